"""Attachments: photos, signatures and documents on tasks, the proof that the work was done (API.md v2,
"Attachments").

Inside the ``jobs`` app because they are part of a job: the job's completion rule reads them (``rules``), the change
feed renders them (``jobs.feed``), and deleting a task or a job removes them. The modules follow the app's layers:
``content`` (sniffing, decoding and re-encoding the bytes; no I/O but the file given), ``storage`` (object keys and
``STORAGES["default"]``), ``signing`` (the JobOps-signed links), ``rules``, ``selectors``, ``services`` (every write:
locked, audited, in the feed), ``serializers`` and ``views``. The Celery adapters are in ``tasks.attachments``.
"""
