"""Serving genrec models over HTTP: :mod:`genrec.serving.lm_server` puts any
:class:`~genrec.text.lm.LanguageModel` behind an OpenAI-compatible API (``genrec serve-lm``, the
``serve`` extra), validating requests with :mod:`~genrec.serving.lm_requests` and running the
model one request at a time with :mod:`~genrec.serving.lm_worker`."""
