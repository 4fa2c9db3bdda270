"""Catalogers: each declares the paths it reads and parses their bytes into packages.

``CATALOGERS`` in ``registry.py`` is the single list; ``base.py`` has the types, and the
layer analyzer's dispatch (``analysis/dispatch.py``) is the only code that matches paths.
"""
