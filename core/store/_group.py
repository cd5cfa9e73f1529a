"""Group commit, shared by the SQL stores: the :class:`~signoff.store.Batching` ``submit``.

A writer thread takes whatever writes are queued (up to ``_BATCH``), runs them in one
transaction, each in its own savepoint, and commits once. Every queued write is durable before
its future resolves, but a burst of them shares the commit, and the caller pays one hand-off
to the writer thread instead of a worker thread plus a contended lock.

A store mixes in :class:`GroupCommit` and supplies ``_open_batch()``: a context manager that
yields a connection in a write transaction and commits it when the block ends (or rolls it
back when it raises). A write method that runs inside a batch finds the batch's connection with
``_batch_conn()`` and writes in a savepoint of it (``_savepoint``); a read inside a batch reads
through it too, so a write sees the batch so far.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
_BATCH = 128  # writes committed together at most
_Job = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class GroupCommit:
    """The writer thread and its queue; see the module docstring."""

    def _start_group_commit(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_thread: threading.Thread | None = None
        self._writer_name = name
        self._thread_lock = threading.Lock()
        self._batch_local = threading.local()

    # what a store supplies -----------------------------------------------------------------
    def _open_batch(self) -> AbstractContextManager[Any]:
        """A connection in a write transaction, committed when the block ends."""
        raise NotImplementedError

    def _transaction_open(self, conn: Any) -> bool:
        """Whether an error left the batch's transaction open (SQLite may end it)."""
        return True

    def _restart_batch(self, conn: Any) -> None:
        """Begin the batch's transaction again after an error ended it."""
        raise NotImplementedError

    # what the store's methods use ----------------------------------------------------------
    def _after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once what was just written is committed: at the end of the batch when
        inside one (never if its commit fails), else now (a plain write has committed).
        """
        after: list[Callable[[], None]] | None = getattr(self._batch_local, "after", None)
        if after is not None and self._batch_conn() is not None:
            after.append(fn)
        else:
            fn()

    def _batch_conn(self) -> Any:
        """The batch's connection when this thread is the writer inside a batch, else None."""
        return getattr(self._batch_local, "conn", None)

    @contextmanager
    def _savepoint(self, conn: Any) -> Iterator[Any]:
        """One write inside the batch: undone alone when it raises."""
        conn.execute("SAVEPOINT write")
        try:
            yield conn
        except BaseException:
            if self._transaction_open(conn):
                conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
            raise
        conn.execute("RELEASE write")

    # the Batching capability -----------------------------------------------------------------
    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` on the writer thread, committed with whatever else waits.

        ``fn`` is usually one of this store's write methods; anything it writes through the
        store joins the batch's transaction, and anything it reads sees the batch so far. The
        future resolves after the commit, so a resolved write is durable. When ``fn`` raises,
        its own writes are rolled back (a savepoint) and the rest of the batch is unaffected;
        when the commit itself fails, every write of the batch fails with that error.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._writer_thread is None:
            with self._thread_lock:
                if self._writer_thread is None:
                    thread = threading.Thread(target=self._write_loop, daemon=True,
                                              name=f"signoff-writer:{self._writer_name}")
                    thread.start()
                    self._writer_thread = thread
        self._jobs.put((future, fn, args, kwargs))
        return future

    def _stop_group_commit(self) -> None:
        """Finish the queued writes and stop the writer thread."""
        if self._writer_thread is not None:
            self._jobs.put(None)
            self._writer_thread.join()
            self._writer_thread = None

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < _BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        done: list[tuple[concurrent.futures.Future[Any], Any]] = []
        failed: list[tuple[concurrent.futures.Future[Any], BaseException]] = []
        after: list[Callable[[], None]] = []
        try:
            with self._open_batch() as conn:
                self._batch_local.conn = conn
                self._batch_local.after = after
                try:
                    self._run_jobs(conn, batch, done, failed)
                finally:
                    self._batch_local.conn = None
                    self._batch_local.after = None
        except BaseException as exc:  # BEGIN or COMMIT failed: nothing of the batch stays
            # every job fails with this, except one that already failed with its own error
            # (a future takes only its first exception: see below)
            failed.extend((f, exc) for f, _, _, _ in batch)
            done.clear()
            after.clear()
        for fn in after:
            fn()
        for future, result in done:
            future.set_result(result)
        for future, error in failed:
            if not future.done():  # not cancelled, and not failed already
                future.set_exception(error)

    def _run_jobs(self, conn: Any, batch: list[_Job],
                  done: list[tuple[concurrent.futures.Future[Any], Any]],
                  failed: list[tuple[concurrent.futures.Future[Any], BaseException]]) -> None:
        for future, fn, args, kwargs in batch:
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited: never ran
            conn.execute("SAVEPOINT job")
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                failed.append((future, exc))
                if self._transaction_open(conn):
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                else:  # the error ended the transaction: the batch so far is lost
                    failed.extend((f, _batch_lost(exc)) for f, _ in done)
                    done.clear()
                    self._restart_batch(conn)
                continue
            conn.execute("RELEASE job")
            done.append((future, result))


def _batch_lost(cause: BaseException) -> Exception:
    error = RuntimeError(f"a write in the same batch ended the transaction: {cause}")
    error.__cause__ = cause
    return error
