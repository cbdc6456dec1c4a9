"""The runner's error type: anything a user can cause (bad spec, bad option, bad file)."""


class RunnerError(Exception):
    """A problem the user can fix. The message is one line: what is wrong and how to fix it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout``, systemd and Slurm send), raised where the runner is, so it ends
    the way Ctrl-C does: the run marked interrupted, engines stopped."""


class RunInterrupted(Exception):
    """A run ended by Ctrl-C or SIGTERM: what finished is stored, the trial in flight recorded
    ``interrupted``, the run marked ``interrupted``; ``runner trials --resume RUN_ID`` runs the
    rest. ``signal`` is ``"SIGINT"`` or ``"SIGTERM"``; ``note``: why the last trials are still in
    the run's journal, when they could not be merged."""

    def __init__(self, run_id: str, db: str, signal: str, note: str | None = None) -> None:
        super().__init__(f"run {run_id} interrupted by {signal}")
        self.run_id = run_id
        self.db = db
        self.signal = signal
        self.note = note

    @property
    def resume_command(self) -> str:
        import shlex

        return f"runner trials --resume {self.run_id} --db {shlex.quote(self.db)}"

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM."""
        return 143 if self.signal == "SIGTERM" else 130
