"""Using a model day to day: chat, batch jobs, the OpenAI-compatible server, the web demo.

* :mod:`~vidlm.serve.encoding`: video -> visual tokens through :mod:`vidlm.feature_cache`.
* :mod:`~vidlm.serve.session`: a multi-turn conversation about one video (chat, demo).
* :mod:`~vidlm.serve.batch`: JSONL question files, resumable, decoding in threads.
* Server: :mod:`~vidlm.serve.protocol` (request validation), :mod:`~vidlm.serve.media`
  (safe media resolution), :mod:`~vidlm.serve.worker` (the bounded model queue),
  :mod:`~vidlm.serve.backend` (encode + generate), :mod:`~vidlm.serve.app` (FastAPI routes),
  :mod:`~vidlm.serve.server` (assembly, a background server for tests).
* :mod:`~vidlm.serve.demo`: the Gradio app. :mod:`~vidlm.serve.options`: shared CLI flags.

See docs/serving.md.
"""
