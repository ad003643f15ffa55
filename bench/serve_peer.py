"""bench/serve.py's peer: onnxruntime behind FastAPI on uvicorn, answering the Open Inference Protocol's
v2 JSON infer request (and /v2/health/ready) the way a user would write it.

    python3 bench/serve_peer.py MODEL.onnx PORT
"""
import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Request


def app_for(model: str) -> FastAPI:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict:
        return {"ready": True}

    @app.post("/v2/models/mnist/infer")
    async def infer(request: Request) -> dict:
        body = await request.json()
        try:
            [tensor] = body["inputs"]
            x = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])
        except (KeyError, ValueError, TypeError) as error:
            raise HTTPException(400, detail=str(error)) from None
        [logits] = session.run(None, {tensor["name"]: x})
        return {"model_name": "mnist", "outputs": [{"name": "logits", "datatype": "FP32",
                                                    "shape": list(logits.shape), "data": logits.ravel().tolist()}]}
    return app


if __name__ == "__main__":
    uvicorn.run(app_for(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", workers=1)
