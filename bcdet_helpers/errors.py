"""The one exception type users see.

Anything the user can fix (a missing dataset, a corrupt PNG, CUDA asked for but absent) raises
:class:`BcdetError` with a message that names the file and says what to do. The CLI prints that
message without a traceback; notebooks show it as the cell's error.
"""


class BcdetError(Exception):
    """A problem the user can fix; the message says how."""
