"""Calling an AF from keyword inputs, as the tests written against arrays do."""

import functools

import numpy as np

from alimb.acquisition import Context

CONTEXT_FIELDS = ("labels", "labeled_mask", "n_classes", "budget", "rng", "scores", "features", "fg", "head", "oracle",
                  "candidates", "picked", "centers")


def select(af, **inputs):
    """af(Context(...)) with the context's fields taken from `inputs` and the rest bound as the AF's options;
    labels default to -1 everywhere (nothing known), n_classes to the scores' width or the labels' range."""
    fields = {k: v for k, v in inputs.items() if k in CONTEXT_FIELDS}
    options = {k: v for k, v in inputs.items() if k not in CONTEXT_FIELDS}
    mask = np.asarray(fields["labeled_mask"], dtype=bool)
    fields.setdefault("labels", np.full(mask.size, -1))
    if "n_classes" not in fields:
        scores, labels = fields.get("scores"), np.asarray(fields["labels"])
        fields["n_classes"] = np.asarray(scores).shape[1] if scores is not None else int(labels.max()) + 1
    return functools.partial(af, **options)(Context(**fields)) if options else af(Context(**fields))


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


class PauseAfter:
    """A logger (`logger._target_=tests.helpers.PauseAfter`) that, once iteration `iteration` is saved, creates
    `flag` and waits: a test interrupts the run at a known point on an event, however loaded the machine is.
    A resumed run never logs that iteration again, so the same command runs through."""

    def __init__(self, iteration: int, flag: str):
        self.iteration, self.flag = iteration, flag

    def start(self, *args, **kwargs) -> None:
        pass

    def log(self, record) -> None:
        if record.iteration == self.iteration:
            import time
            from pathlib import Path

            Path(self.flag).write_text("")
            time.sleep(300)  # the test's signal arrives meanwhile

    def finish(self, *args, **kwargs) -> None:
        pass


def pause_after(iteration: int, flag) -> tuple[str, ...]:
    """The overrides that make a run pause after `iteration` (0-based) and create `flag`."""
    return ("logger._target_=tests.helpers.PauseAfter", f"+logger.iteration={iteration}", f"+logger.flag={flag}")


def wait_for(flag, proc, timeout: float = 300) -> None:
    """Until `flag` exists (the run reached its pause); fails if the process ended first."""
    import time

    deadline = time.monotonic() + timeout
    while not flag.exists():
        assert proc.poll() is None, "the run ended before its pause"
        assert time.monotonic() < deadline, "the run never reached its pause"
        time.sleep(0.01)


class StopAfter:
    """A logger (`logger._target_=tests.helpers.StopAfter`) that interrupts the run, as Ctrl-C would, once iteration
    `iteration` is saved: the first half of a run, in the test's own process."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def start(self, *args, **kwargs) -> None:
        pass

    def log(self, record) -> None:
        if record.iteration == self.iteration:
            raise KeyboardInterrupt

    def finish(self, *args, **kwargs) -> None:
        pass
