"""The one base class of the host tools' user-facing errors.

Every error an operator can cause (a bad argument, a missing or corrupt back office, an unreachable
database, a refused operation) is an `OffgateError` (or a subclass); its message is one line that
says what is wrong and, where there is one, what to do. The CLI's entry point (cli/base.py OffgateGroup)
prints it as `offgate: <message>` and exits with `exit_code` (1; 2 for bad usage). Anything else
that escapes a command is a bug: it is reported as `offgate: internal error ...` with exit 3.
"""


class OffgateError(Exception):
    """A user-facing problem: one line, non-zero exit status (`exit_code`)."""

    exit_code = 1

    def __str__(self):
        # one line, whatever the message was built from
        return " ".join(super().__str__().split())


class UsageError(OffgateError):
    """A bad value the operator gave (exit status 2, like click's usage errors)."""

    exit_code = 2


class NoBackOffice(OffgateError):
    """The data directory holds no back office (it is created only by `offgate init`)."""


# Exit status of a command interrupted with Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
# Exit status of a command whose stdout reader went away (`offgate report | head`): 128 + SIGPIPE,
# what a shell reports for a program SIGPIPE ended; no message.
EXIT_BROKEN_PIPE = 141


class Interrupted(OffgateError):
    """Ctrl-C: `offgate: interrupted`, exit status 130."""

    exit_code = EXIT_INTERRUPTED
# Exit status of an unexpected exception (a bug, not an operator error).
EXIT_INTERNAL = 3
