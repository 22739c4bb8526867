"""``EntryScript`` for entry scripts: the logger and folders of this worker process.

The same object as ``daskprs.EntryScript``.
"""

from daskprs.entry_script import EntryScript

__all__ = ["EntryScript"]
