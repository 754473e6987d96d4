"""The baseline of benchmarks/serving.py: a plain FastAPI endpoint, one forward pass per request.

    python -m benchmarks.serving_plain CKPT PORT

The same model and preprocessing as ``python -m project serve`` (project/serve/api.py's
ClassifierAPI), without LitServe: no batching, no separate worker process. FastAPI runs the
blocking work in its thread pool, as it does for any plain ``def`` endpoint.
"""

from __future__ import annotations

import base64
import sys

import uvicorn
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from project.serve.api import ClassifierAPI


def app_for(checkpoint: str) -> FastAPI:
    api = ClassifierAPI(ckpt_path=checkpoint)
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
    uvicorn.run(app_for(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
