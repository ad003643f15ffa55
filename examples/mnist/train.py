"""Train the mnist example models and export them as ONNX graph + safetensors weights.

Trains two small classifiers on the first 8,000 images of the MNIST test set
(t10k) and reports accuracy on the last 2,000, which training never sees:

  - mnist: a two-conv MNIST net
      conv3x3(1->32) ReLU maxpool 2, conv3x3(32->64) ReLU maxpool 2, flatten,
      fc(1600->128) ReLU, fc(128->10)   (dropout only while training)
  - mlp:   fc(784->512) ReLU, fc(512->256) ReLU, fc(256->10)

Both take `input` [batch,1,28,28] float32 pixels in [0,1]; the MNIST
normalization (x-0.1307)/0.3081 is a Sub/Div inside the graph, so users feed
plain pixels. Both return `logits` [batch,10] (raw scores, no softmax).

Each model is written as <name>.safetensors (float32) and <name>.onnx (opset 17)
whose initializers hold no data of their own: each names its tensor in the
safetensors file by ONNX external data (location, offset, length), so the .onnx
is a valid model that onnxruntime runs as it is, and kiln matches weights by
name. The pair is then checked with onnxruntime against torch.

Needs torch (CPU): pip install torch==2.13.0 && python examples/mnist/train.py
Training is seeded and single-threaded, so a rerun writes the same bytes.
"""

import argparse
import gzip
import io
import json
import os
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "mnist")

N_TRAIN = 8000  # first 8,000 t10k images train, the last 2,000 are held out
TOLERANCE = 1e-5  # onnxruntime vs torch
MEAN, STD = 0.1307, 0.3081
OPSET = 17


def read_idx(path):
    """An IDX file (gzip) as a numpy array: magic 0x0000 <dtype> <rank>, big-endian dims."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    rank = raw[3]
    dims = np.frombuffer(raw, ">u4", rank, 4).astype(int)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)


def load_mnist(data_dir):
    """t10k images as float32 [N,1,28,28] in [0,1] and labels as int64 [N]."""
    images = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"))
    x = (images.astype(np.float32) / 255.0)[:, None, :, :]
    return x, labels.astype(np.int64)


class Normalize(nn.Module):
    """(x - mean) / std, exported as Sub and Div with [1]-shaped weights."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([MEAN]))
        self.register_buffer("std", torch.tensor([STD]))

    def forward(self, x):
        return (x - self.mean) / self.std


class Net(nn.Module):
    """Two 3x3 convs, each followed by a 2x2 max-pool, and two FCs: the classic PyTorch MNIST net with
    a pool after each conv, which shrinks fc1 from 9216 to 1600 inputs (0.9 MB of weights, not 4.8 MB)."""

    def __init__(self):
        super().__init__()
        self.norm = Normalize()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(1600, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.norm(x)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(torch.flatten(x, 1))
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = Normalize()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, 10)
        self.dropout = nn.Dropout(0.2)

    def forward(self, x):
        x = torch.flatten(self.norm(x), 1)
        x = self.dropout(F.relu(self.fc1(x)))
        x = self.dropout(F.relu(self.fc2(x)))
        return self.fc3(x)


def shift_batch(x, rng, max_shift=2):
    """Translate each image by up to max_shift pixels (zero fill): cheap augmentation."""
    n = x.shape[0]
    padded = np.pad(x, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy = rng.integers(0, 2 * max_shift + 1, n)
    dx = rng.integers(0, 2 * max_shift + 1, n)
    out = np.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    return out


def train(model, x, y, epochs, seed, gamma, batch=64):
    """Adadelta (lr 1.0) with a per-epoch step decay, as in the PyTorch MNIST example."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=gamma)
    for epoch in range(epochs):
        model.train()
        t0 = time.time()
        order = rng.permutation(len(x))
        total = 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            xb = torch.from_numpy(shift_batch(x[idx], rng))
            yb = torch.from_numpy(y[idx])
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f} ({time.time() - t0:.1f} s)")
    model.eval()
    return model


@torch.no_grad()
def predict(model, x):
    return torch.cat([model(torch.from_numpy(x[i:i + 500])) for i in range(0, len(x), 500)]).numpy()


def export(model, name, out_dir):
    """Write <name>.safetensors and <name>.onnx (initializers pointing into it); return their paths."""
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and plain-op output is what we want
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (torch.zeros(1, 1, 28, 28),), buf, dynamo=False, opset_version=OPSET,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    proto = onnx.load_from_string(buf.getvalue())
    weights = {}
    for init in proto.graph.initializer:
        arr = onnx.numpy_helper.to_array(init)
        if arr.dtype != np.float32:
            raise TypeError(f"{name}: initializer {init.name} is {arr.dtype}, want float32")
        weights[init.name] = np.ascontiguousarray(arr)
    proto.doc_string = f"kiln example {name}: weights in {name}.safetensors, matched by name"
    onnx_path = os.path.join(out_dir, f"{name}.onnx")
    st_path = os.path.join(out_dir, f"{name}.safetensors")
    save_file(weights, st_path)
    os.chmod(st_path, 0o644)  # safetensors creates it 0600
    point_initializers_at(proto, st_path)
    onnx.save(proto, onnx_path)
    return onnx_path, st_path


def point_initializers_at(proto, st_path):
    """Make every initializer ONNX external data inside the safetensors file (no bytes copied)."""
    with open(st_path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
    del proto.graph.initializer[:]
    for name in sorted(k for k in header if k != "__metadata__"):
        entry = header[name]
        begin, end = entry["data_offsets"]
        tensor = onnx.TensorProto(name=name, data_type=onnx.TensorProto.FLOAT, dims=entry["shape"],
                                  data_location=onnx.TensorProto.EXTERNAL)
        for key, value in (("location", os.path.basename(st_path)), ("offset", str(8 + header_len + begin)),
                           ("length", str(end - begin))):
            tensor.external_data.add(key=key, value=value)
        proto.graph.initializer.append(tensor)


def check_with_onnxruntime(onnx_path, st_path, model, x):
    """|ort - torch| and |torch| per logit (over x, then x[:1] at batch 1), and ort's classes for x."""
    proto = onnx.load(onnx_path)  # reads the initializers' bytes out of the safetensors file
    onnx.checker.check_model(proto)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x})[0]
    want = predict(model, x)
    one = sess.run(["logits"], {"input": x[:1]})[0]  # batch 1, the deployed shape
    got_all, want_all = np.concatenate([got, one]), np.concatenate([want, want[:1]])
    return np.abs(got_all - want_all), np.abs(want_all), got.argmax(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="directory holding t10k-*-idx*-ubyte.gz")
    ap.add_argument("--out", default=HERE, help="where to write the .onnx and .safetensors files")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cnn-epochs", type=int, default=12)
    ap.add_argument("--mlp-epochs", type=int, default=20)
    ap.add_argument("--only", choices=["mnist", "mlp"], help="train just one of the models")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    x, y = load_mnist(args.data)
    x_train, y_train, x_test, y_test = x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]
    print(f"train {len(x_train)} / held out {len(x_test)} images from {args.data}")

    # (name, model, epochs, lr decay per epoch)
    specs = [("mnist", Net, args.cnn_epochs, 0.7), ("mlp", MLP, args.mlp_epochs, 0.9)]
    for name, cls, epochs, gamma in specs:
        if args.only and name != args.only:
            continue
        print(f"{name}: training {epochs} epochs")
        torch.manual_seed(args.seed)
        model = train(cls(), x_train, y_train, epochs, args.seed, gamma)
        acc = float((predict(model, x_test).argmax(1) == y_test).mean())
        onnx_path, st_path = export(model, name, args.out)
        diff, scale, ort_pred = check_with_onnxruntime(onnx_path, st_path, model, x_test)
        ort_acc = float((ort_pred == y_test).mean())
        print(f"{name}: held-out accuracy {acc:.4f} (torch), {ort_acc:.4f} (onnxruntime); "
              f"|ort - torch| max {diff.max():.2e} (logits up to {scale.max():.1f})")
        # 1e-5, relative for logits larger than 1: float32 sums in a different order.
        bad = diff > TOLERANCE * np.maximum(scale, 1.0)
        if bad.any():
            raise SystemExit(f"{name}: onnxruntime and torch disagree at {int(bad.sum())} logits "
                             f"(max {diff.max():.2e})")
        for path in (onnx_path, st_path):
            print(f"  wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
