"""Small in-memory 2AFC datasets for the training tests (real photographs, simple distortions).

Items follow the dataset contract shared by data/training/evaluation code:
``{'ref','p0','p1': float32 (3,H,W) in [-1,1], 'judge': float32 (1,), 'subset': str, 'id': str}``.
Judgments come from a simulated pixel-space observer (never human data).
"""

from __future__ import annotations

import io
import time

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import Dataset

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina")


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img[:, :, :3]


def _distort(crop: np.ndarray, kind: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    img = Image.fromarray(crop)
    if kind == 0:  # additive noise
        out = crop + rng.normal(0, 40 * strength, crop.shape)
    elif kind == 1:  # blur
        out = np.asarray(img.filter(ImageFilter.GaussianBlur(0.3 + 2.5 * strength)), dtype=np.float64)
    elif kind == 2:  # JPEG
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(60 - 55 * strength))
        out = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64)
    else:  # contrast change
        mean = crop.mean()
        out = mean + (crop - mean) * (1 - 0.8 * strength)
    return np.clip(out, 0, 255).astype(np.uint8)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1).contiguous()


class TripletSet(Dataset):
    """``n`` triplets of ``size`` x ``size`` patches cut from scikit-image photographs.

    p0 and p1 are two distortions (noise, blur, JPEG, contrast) of random
    strengths; ``judge`` (fraction preferring p1) comes from a simulated
    observer comparing pixel MSEs through a logistic function, quantised to 4 judges.

    Args:
        delay: seconds to sleep in ``__getitem__`` (makes a training run slow
            enough for a test to interrupt it).
    """

    def __init__(self, n: int = 24, size: int = 32, seed: int = 0, delay: float = 0.0):
        rng = np.random.default_rng(seed)
        self.delay = delay
        self.items = []
        photos = [_photo(p) for p in PHOTOS]
        for i in range(n):
            img = photos[i % len(photos)]
            c = int(rng.integers(size, min(img.shape[:2]) // 2))  # crop side, then resized to `size`
            y, x = int(rng.integers(0, img.shape[0] - c)), int(rng.integers(0, img.shape[1] - c))
            crop = np.asarray(Image.fromarray(img[y : y + c, x : x + c]).resize((size, size), Image.BILINEAR))
            k0, k1 = rng.integers(0, 4, size=2)
            p0 = _distort(crop, int(k0), float(rng.uniform(0.1, 1.0)), rng)
            p1 = _distort(crop, int(k1), float(rng.uniform(0.1, 1.0)), rng)
            mse0 = np.mean((p0.astype(np.float64) - crop) ** 2) / 255.0**2
            mse1 = np.mean((p1.astype(np.float64) - crop) ** 2) / 255.0**2
            prob_p1 = 1.0 / (1.0 + np.exp(-200.0 * (mse0 - mse1)))  # p1 closer -> judges prefer p1
            judge = rng.binomial(4, prob_p1) / 4.0
            self.items.append(
                {
                    "ref": _to_tensor(crop),
                    "p0": _to_tensor(p0),
                    "p1": _to_tensor(p1),
                    "judge": torch.tensor([judge], dtype=torch.float32),
                    "subset": "photos",
                    "id": f"{i:04d}",
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        if self.delay:
            time.sleep(self.delay)
        return dict(self.items[i])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(
    rank: int, world: int, port: int, configs: list[dict], n_train: int, n_val: int, out_dir: str, result_path: str
) -> None:
    """One rank of a gloo process group: train each config, rank 0 saves the results.

    Lives here (not in a test module) so ``torch.multiprocessing.spawn`` can import it.
    """
    import torch.distributed as dist

    from lpips_core.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        results = []
        for i, cfg in enumerate(configs):
            trainer = Trainer(
                TrainConfig(**cfg), TripletSet(n_train, 32, 0), TripletSet(n_val, 32, 1), out_dir=f"{out_dir}/run{i}"
            )
            trainer.fit()
            results.append(
                {
                    "lin": torch.cat([lin.conv.weight.detach().flatten() for lin in trainer.model.lins]),
                    "rank": torch.cat([p.detach().flatten() for p in trainer.rank_loss.parameters()]),
                    "history": trainer.history,
                    "cache": trainer.train_cache.m0 if trainer.train_cache is not None else None,
                }
            )
        if rank == 0:
            torch.save(results, result_path)
    finally:
        dist.destroy_process_group()


def write_bapps(root, splits: dict[str, TripletSet], subset: str = "photos") -> None:
    """Write triplets in the BAPPS layout: ``<root>/2afc/<split>/<subset>/{ref,p0,p1}/<id>.png`` + ``judge/<id>.npy``."""
    from pathlib import Path

    for split, ds in splits.items():
        base = Path(root) / "2afc" / split / subset
        for k in ("ref", "p0", "p1", "judge"):
            (base / k).mkdir(parents=True, exist_ok=True)
        for item in ds.items:
            for k in ("ref", "p0", "p1"):
                img = ((item[k].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
                Image.fromarray(img).save(base / k / f"{item['id']}.png")
            np.save(base / "judge" / f"{item['id']}.npy", item["judge"].numpy().reshape(1))
