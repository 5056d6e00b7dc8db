"""tinykiln: TFLite models to bare-metal firmware. Plain Python: nothing here imports SCons."""


class KilnError(Exception):
    """An error the user can act on: the message names the problem and the way out.

    Front ends print str(error) without a traceback and exit non-zero.
    """
