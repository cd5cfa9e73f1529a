"""Bridges: approvals an engine asks for natively, mirrored in the hub's inbox.

An adapter makes a workflow ask the hub. A bridge goes the other way: it reads the questions
an engine's own human-in-the-loop steps ask (Airflow 3.3's ``HITLOperator`` family, today),
shows each as an event, and answers the engine through its API when the event is decided in
the hub, so signoff's policies, quorum, escalation and audit apply to approvals that were
written without signoff.

A bridge is loaded only when the hub's settings configure it (``[airflow_hitl.NAME]``); it runs
as background tasks of the hub (:mod:`signoff.hub.tasks`' rules: bounded, timed out) and is the
resumer of the events it creates.
"""
