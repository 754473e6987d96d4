"""Serve a trained classifier over HTTP with LitServe: ``python -m project serve``.

    python -m project serve --ckpt_path lightning_logs/cnn/version_0/checkpoints/last.ckpt
    python -m project serve --onnx model.onnx --port 8000
    curl -F image=@digit.png http://127.0.0.1:8000/predict

Modules: cli.py (the command), api.py (the LitAPI: decode, batch, predict, answer), limits.py
(what a request may send: size, content type, pixels), guard.py (the HTTP layer that applies those
limits before a request reaches the model), page.html (GET /: try the model in a browser).
"""
