"""bench/serve.py's peer: onnxruntime behind FastAPI on uvicorn, answering the Open Inference Protocol's
v2 infer request (and /v2/health/ready) the way a user would write it: JSON tensors, or Triton's binary
tensor extension (a JSON header of Inference-Header-Content-Length bytes, then the raw FP32 tensors;
binary outputs when the request asks for them).

    python3 bench/serve_peer.py MODEL.onnx NAME PORT
"""
import json
import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response

HEADER_LENGTH = "Inference-Header-Content-Length"


def read_inputs(body: bytes, header_length: str | None) -> tuple[dict, dict[str, np.ndarray]]:
    """The request's JSON and its FP32 input tensors by name."""
    split = int(header_length) if header_length is not None else len(body)
    request = json.loads(body[:split])
    tensors, offset = {}, split
    for tensor in request["inputs"]:
        if tensor["datatype"] != "FP32":
            raise ValueError(f"input {tensor['name']}: this server takes FP32")
        size = tensor.get("parameters", {}).get("binary_data_size")
        if size is None:
            tensors[tensor["name"]] = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])
        else:
            tensors[tensor["name"]] = np.frombuffer(body, "<f4", size // 4, offset).reshape(tensor["shape"])
            offset += size
    return request, tensors


def reply(name: str, outputs: list, binary: bool) -> Response | dict:
    described = [{"name": output.name, "datatype": "FP32", "shape": list(value.shape)}
                 for output, value in outputs]
    if not binary:
        return {"model_name": name, "outputs": [{**d, "data": value.ravel().tolist()}
                                                for d, (_, value) in zip(described, outputs)]}
    raw = [np.ascontiguousarray(value, "<f4").tobytes() for _, value in outputs]
    header = json.dumps({"model_name": name, "outputs": [{**d, "parameters": {"binary_data_size": len(r)}}
                                                         for d, r in zip(described, raw)]}).encode()
    return Response(header + b"".join(raw), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})


def app_for(model: str, name: str) -> FastAPI:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict:
        return {"ready": True}

    @app.post(f"/v2/models/{name}/infer", response_model=None)
    async def infer(request: Request) -> Response | dict:
        try:
            body, tensors = read_inputs(await request.body(), request.headers.get(HEADER_LENGTH))
        except (KeyError, ValueError, TypeError) as error:
            raise HTTPException(400, detail=str(error)) from None
        values = session.run(None, tensors)
        binary = body.get("parameters", {}).get("binary_data_output", False)
        return reply(name, list(zip(session.get_outputs(), values)), binary)
    return app


if __name__ == "__main__":
    uvicorn.run(app_for(sys.argv[1], sys.argv[2]), host="127.0.0.1", port=int(sys.argv[3]), log_level="warning",
                workers=1)
