"""The baseline of benchmarks/serving.py: a plain FastAPI endpoint, one forward pass per request.

    python -m benchmarks.serving_plain CKPT --port PORT

The same model and preprocessing as ``python -m project serve`` (project/serve/api.py's
ClassifierAPI), without LitServe: no batching, no separate worker process. FastAPI runs the
blocking work in its thread pool, as it does for any plain ``def`` endpoint. Its torch thread
count follows the same rule as serve's worker (project/serve/cli.py ``worker_threads``: 1 on 2
cores), so the baseline is not slowed by the oversubscription serve avoids.
"""

from __future__ import annotations

import argparse
import base64

import uvicorn
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from project.serve.api import ClassifierAPI


def app_for(checkpoint: str) -> FastAPI:
    from project.serve.cli import worker_threads

    api = ClassifierAPI(
        ckpt_path=checkpoint,
        threads=worker_threads(argparse.Namespace(threads=0, workers=1), "cpu"),
    )
    api.setup("cpu")
    app = FastAPI()

    def answer(data: bytes) -> dict:
        image = api.decode_request({"image": base64.b64encode(data).decode()})
        return api.encode_response(api.predict(image))

    @app.get("/health")
    def health() -> str:
        return "ok"

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        return await run_in_threadpool(answer, await request.body())

    return app


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(prog="python -m benchmarks.serving_plain")
    arguments.add_argument("checkpoint")
    arguments.add_argument("--port", type=int, default=8000)
    options = arguments.parse_args()
    uvicorn.run(app_for(options.checkpoint), host="127.0.0.1", port=options.port,
                log_level="warning")  # fmt: skip
