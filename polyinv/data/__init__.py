"""Data: reading the study's files (``io``), scaling, and the Lightning data module (``module``).

Nothing is re-exported here: importing ``polyinv.data.io`` (as the simulator does) must not import Lightning
through ``polyinv.data.module`` (4 s of a Dask worker's start)."""
