"""Sparse autoencoders. Architectures are types (ReLU-L1 | TopK | BatchTopK | MatryoshkaBatchTopK | JumpReLU).

Shapes: x (B, d_in); W_enc (d_in, d_sae); W_dec (d_sae, d_in); latents (B, d_sae). The encoder sees
x - b_dec (SAELens' apply_b_dec_to_input). TopK and BatchTopK train on a sparse path (_PairDecode):
one dense encoder GEMM, then decoding and every gradient touch only the selected latents, so a step
costs about 2 d d_sae + O(k d) FLOP per row instead of ~10 d d_sae.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmfeatures.errors import InputError


def _number(arch: object, field: str, *, integer: bool = False, low: float = 0.0, strict: bool = False,
            example: float = 1, optional: bool = False) -> None:
    """Check one numeric config field. A numpy scalar is stored as a plain int/float (so configs stay
    JSON-able); a Python int or float is kept as given (so config hashes do not change).

    Raises InputError naming the field, the value, the expected type and a valid call."""
    value = getattr(arch, field)
    if optional and value is None:
        return
    cls = type(arch).__name__
    kind = "a whole number (int)" if integer else "a number (float)"
    bound = f"{'>' if strict else '>='} {low:g}"
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    if ok_type:
        plain = int(value) if integer else float(value)
        if math.isfinite(plain) and (plain > low if strict else plain >= low):
            if type(value) not in (int, float):
                object.__setattr__(arch, field, plain)
            return
    if isinstance(value, str):  # a value read from text: suggest the converted one when it parses
        with contextlib.suppress(ValueError):
            parsed = int(value) if integer else float(value)
            example = parsed if (parsed > low if strict else parsed >= low) else example
    none = " or None" if optional else ""
    raise InputError(f"{cls}.{field} must be {kind} {bound}{none}, got {value!r} ({type(value).__name__}); "
                     f"pass e.g. {cls}({field}={example!r})")


@dataclass(frozen=True)
class ReLU:
    """Anthropic's ReLU-L1 (Scaling Monosemanticity): penalty λ Σ f_i ‖W_dec,i‖."""

    l1_coefficient: float = 5.0
    """λ, reached after the trainer's sparsity warm-up."""

    def __post_init__(self):
        _number(self, "l1_coefficient", example=5.0)


@dataclass(frozen=True)
class TopK:
    """OpenAI's TopK (Gao et al. 2024) with the AuxK loss on dead latents."""

    k: int = 32
    """Active latents per row."""
    aux_k: int | None = None
    """Dead latents used by AuxK; None means d_in // 2."""
    aux_coefficient: float = 1 / 32
    """Weight of the AuxK loss (0 disables it)."""

    def __post_init__(self):
        _number(self, "k", integer=True, low=1, example=32)
        _number(self, "aux_k", integer=True, low=1, example=256, optional=True)
        _number(self, "aux_coefficient", example=1 / 32)


@dataclass(frozen=True)
class BatchTopK(TopK):
    """BatchTopK (Bussmann et al. 2024): the top k*B activations over the whole batch. After
    training, a learned threshold makes it a JumpReLU, and it is saved as one."""


@dataclass(frozen=True)
class MatryoshkaBatchTopK(BatchTopK):
    """Matryoshka BatchTopK (Bussmann et al. 2025; SAELens's recommended Matryoshka BatchTopK): BatchTopK whose
    latents form nested prefixes, each of which must reconstruct the input alone; the loss adds every prefix's
    error to the full one, so the first latents learn general features and later ones refine them (less
    absorption). Saved, like BatchTopK, as a JumpReLU with its threshold."""

    prefixes: tuple[int, ...] | None = None
    """Widths of the nested prefixes below the full width, increasing; None = width/16, /8, /4 and /2."""

    def __post_init__(self):
        super().__post_init__()
        if self.prefixes is not None:
            ok = isinstance(self.prefixes, (tuple, list)) and all(
                isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in self.prefixes) \
                and list(self.prefixes) == sorted(set(self.prefixes))
            if not ok:
                raise InputError(f"MatryoshkaBatchTopK.prefixes = {self.prefixes!r}; give increasing whole numbers "
                                 "below the width, e.g. MatryoshkaBatchTopK(k=32, prefixes=(256, 1024)), or None")
            object.__setattr__(self, "prefixes", tuple(int(w) for w in self.prefixes))

    def widths(self, d_sae: int) -> tuple[int, ...]:
        """The prefix widths for an SAE of ``d_sae`` latents, the full width excluded."""
        if self.prefixes is None:
            return tuple(w for w in (d_sae // 16, d_sae // 8, d_sae // 4, d_sae // 2) if 0 < w < d_sae)
        if self.prefixes[-1] >= d_sae:
            raise InputError(f"MatryoshkaBatchTopK.prefixes = {self.prefixes} reach the width {d_sae}; give "
                             "prefixes below it")
        return self.prefixes


@dataclass(frozen=True)
class JumpReLU:
    """JumpReLU (Rajamanoharan et al. 2024), trained with straight-through estimators. With ``target_l0`` set
    (the default) the penalty is l0_coefficient d_in (L0 / target_l0 - 1)^2, which holds the measured L0 near the
    target (as dictionary_learning's JumpReLU trainer does; d_in puts it on the scale of the squared error of
    inputs normalised to mean squared norm d_in, as the trainer normalises them); with
    ``target_l0=None`` it is l0_coefficient L0, the paper's penalty, whose L0 depends on the coefficient."""

    l0_coefficient: float = 1.0
    """Weight of the sparsity penalty."""
    bandwidth: float = 0.05
    """Width ε of the rectangle kernel in the pseudo-derivatives, in units of the (normalised) inputs, whose mean
    squared norm is d_in in training; 0.001 (the paper's, for inputs of unit norm) gave thresholds almost no
    gradient here and the L0 stayed at half the latents."""
    init_threshold: float = 0.1
    """Initial threshold θ of every latent, in the same units; with ``target_l0`` the trainer starts each latent at
    the quantile of its first batch where it fires on target_l0 / width of the rows (never below this)."""
    target_l0: float | None = 32.0
    """Active latents per row the penalty aims at; None = the plain L0 penalty."""
    threshold_lr: float = 10.0
    """The thresholds' learning rate as a multiple of the run's. Adam moves a log threshold by about its lr a step,
    slower than the encoder grows its pre-activations early in a run: at 1x a 192-step run on e5 (LibreOffice, 98k
    tokens) ended at L0 25 for a target of 16 and 48 for 32; at 10x it ends within 3% of every target from 8 to 32
    at widths 768 and 1536 (30x: the same L0 with more dead latents)."""

    def __post_init__(self):
        _number(self, "l0_coefficient", example=1.0)
        _number(self, "threshold_lr", strict=True, example=10.0)
        _number(self, "bandwidth", strict=True, example=0.05)
        _number(self, "init_threshold", strict=True, example=0.1)
        _number(self, "target_l0", strict=True, example=32.0, optional=True)


Arch = ReLU | TopK | BatchTopK | MatryoshkaBatchTopK | JumpReLU

ARCHS: dict[str, type] = {"relu": ReLU, "topk": TopK, "batchtopk": BatchTopK, "matryoshka": MatryoshkaBatchTopK,
                          "jumprelu": JumpReLU}
"""The one vocabulary of architecture names (CLI flags, job configs): name -> class."""


def arch_name(arch: Arch) -> str:
    """The vocabulary name of an architecture instance: ``arch_name(TopK(k=8)) == "topk"``."""
    for name, cls in ARCHS.items():
        if type(arch) is cls:  # exact type: BatchTopK is a TopK subclass with its own name
            return name
    raise InputError(f"{arch!r} is not an SAE architecture; use one of {', '.join(c.__name__ for c in ARCHS.values())}")


def make_arch(name: str, *, k: int = 32, l1: float | None = None) -> Arch:
    """The architecture called ``name`` (see ARCHS). ``k`` is the active latents per row: TopK's, BatchTopK's
    and Matryoshka's k, JumpReLU's target L0; ``l1`` is ReLU's L1 or JumpReLU's L0 coefficient (None keeps the
    class default).

    >>> make_arch("batchtopk", k=16)
    BatchTopK(k=16, aux_k=None, aux_coefficient=0.03125)
    """
    key = name.strip().lower().replace("-", "").replace("_", "") if isinstance(name, str) else ""
    if key not in ARCHS:
        close = difflib.get_close_matches(key, list(ARCHS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(f"unknown SAE architecture {name!r}; {hint}known: {', '.join(ARCHS)}")
    cls = ARCHS[key]
    if l1 is not None and (issubclass(cls, TopK) or isinstance(l1, bool) or not isinstance(l1, (int, float))
                           or not 0 <= l1 < float("inf")):
        raise InputError(f"l1 = {l1!r} with architecture {name!r}; l1 is ReLU's L1 or JumpReLU's L0 coefficient, a "
                         "finite number >= 0 (e.g. 5): drop it for TopK-style architectures")
    if issubclass(cls, TopK):
        return cls(k=k)
    if cls is ReLU:
        return cls(**({"l1_coefficient": l1} if l1 is not None else {}))
    return cls(target_l0=float(k), **({"l0_coefficient": l1} if l1 is not None else {}))


class ForwardOutput(NamedTuple):
    latents: torch.Tensor
    """(B, d_sae) latents: dense for ReLU-L1 and JumpReLU, a sparse COO tensor for TopK and
    BatchTopK (their training path never builds the dense matrix); see fire_counts, mean_l0."""
    recon: torch.Tensor
    """(B, d_in) reconstruction."""
    mse: torch.Tensor
    """Mean over rows of the squared error summed over d_in."""
    sparsity: torch.Tensor
    """The sparsity penalty (L1-weighted, L0) or 0 for TopK-style architectures."""
    aux: torch.Tensor
    """The AuxK loss (0 when no latent is dead)."""
    loss: torch.Tensor
    """Total training loss (mse + prefix + sparsity + aux)."""
    prefix: torch.Tensor | None = None
    """Matryoshka: the summed reconstruction errors of the nested prefixes (None for other architectures)."""


class _Step(torch.autograd.Function):
    """Heaviside step with a rectangle-kernel pseudo-derivative wrt the threshold."""

    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        kernel = ((pre - theta).abs() < ctx.eps / 2).to(grad.dtype) / ctx.eps
        return None, (-grad * kernel).sum(0), None


class _Jump(torch.autograd.Function):
    """JumpReLU z = pre * H(pre - θ): true gradient wrt pre, STE wrt θ."""

    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return pre * (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        gate = (pre > theta).to(grad.dtype)
        kernel = ((pre - theta).abs() < ctx.eps / 2).to(grad.dtype) / ctx.eps
        return grad * gate, (-grad * theta * kernel).sum(0), None


_CHUNK = 8192  # (row, latent) pairs per gather chunk: keeps the (chunk, d) gathers in cache
AUX_DENSE_MAX = 2048  # AuxK goes dense over the dead columns up to this many dead latents


def _pair_dot(a_bd: torch.Tensor, rows: torch.Tensor, w_nd: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """<a[rows[i]], w[cols[i]]> for every pair i, computed in cache-sized chunks."""
    out = torch.empty(len(rows), dtype=a_bd.dtype, device=a_bd.device)
    for i in range(0, len(rows), _CHUNK):
        out[i : i + _CHUNK] = (a_bd[rows[i : i + _CHUNK]] * w_nd[cols[i : i + _CHUNK]]).sum(-1)
    return out


class _PairDecode(torch.autograd.Function):
    """Σ over selected (row, latent) pairs of relu(pre[row, latent]) W_dec[latent], where
    pre = (x - b_dec) @ W_enc + b_enc was computed once without grad. The backward touches only the
    pairs: O(nnz d) for W_dec, W_enc and b_enc, and one GEMV for b_dec (-W_enc @ grad_b_enc)."""

    @staticmethod
    def forward(ctx, x, b_dec, w_enc, b_enc, w_dec, rows, cols, pre_val):
        val = pre_val.relu()
        z = torch.sparse_coo_tensor(torch.stack([rows, cols]), val, (x.shape[0], w_dec.shape[0]),
                                    check_invariants=False)
        ctx.save_for_backward(x, b_dec, w_enc, w_dec, rows, cols, val)
        return torch.sparse.mm(z, w_dec)

    @staticmethod
    def backward(ctx, g_out):
        x, b_dec, w_enc, w_dec, rows, cols, val = ctx.saved_tensors
        n, b = w_dec.shape[0], x.shape[0]
        g_val = _pair_dot(g_out, rows, w_dec, cols) * (val > 0)
        pairs_t = torch.stack([cols, rows])
        g_w_dec = torch.sparse.mm(torch.sparse_coo_tensor(pairs_t, val, (n, b), check_invariants=False), g_out)
        xc = x - b_dec
        g_w_enc = torch.sparse.mm(torch.sparse_coo_tensor(pairs_t, g_val, (n, b), check_invariants=False), xc).T
        g_b_enc = torch.zeros(n, dtype=g_val.dtype, device=g_val.device).index_add_(0, cols, g_val)
        g_b_dec = -(w_enc @ g_b_enc)  # xc = x - b_dec, and Σ_rows grad_xc = W_enc @ grad_b_enc
        return None, g_b_dec, g_w_enc, g_b_enc, g_w_dec, None, None, None


def fire_counts(latents: torch.Tensor) -> torch.Tensor:
    """(d_sae,) how many rows each latent fired on; dense or sparse-COO latents."""
    if latents.is_sparse:
        lat = latents.coalesce()
        cols, val = lat.indices()[1], lat.values()
        return torch.bincount(cols[val > 0], minlength=latents.shape[1])
    return (latents > 0).sum(0)


def mean_l0(latents: torch.Tensor) -> float:
    """Mean number of active latents per row; dense or sparse-COO latents."""
    if latents.is_sparse:
        return float((latents.coalesce().values() > 0).sum()) / max(latents.shape[0], 1)
    return float((latents > 0).sum(1).float().mean())


class SAE(nn.Module):
    """A sparse autoencoder. ``encode`` and ``decode`` work on (n, d_in) and (n, d_sae) tensors.

    >>> sae = SAE(384, 4096, TopK(k=32))
    >>> sae.decode(sae.encode(torch.randn(8, 384))).shape
    torch.Size([8, 384])
    """

    def __init__(self, d_in: int, d_sae: int, arch: Arch, seed: int = 0, tied_init: bool = True):
        super().__init__()
        if d_in < 1 or d_sae < 1:
            raise ValueError(f"d_in and d_sae must be positive, got {d_in}, {d_sae}")
        self.d_in, self.d_sae, self.arch = d_in, d_sae, arch
        g = torch.Generator().manual_seed(seed)
        w_dec = torch.randn(d_sae, d_in, generator=g)
        norm = 0.1 if isinstance(arch, ReLU) else 1.0  # ReLU-L1: small decoder rows, free to grow
        w_dec = F.normalize(w_dec, dim=1) * norm
        self.W_dec = nn.Parameter(w_dec)
        if tied_init:  # Gao et al.: W_enc = W_dec^T at init
            self.W_enc = nn.Parameter(w_dec.T.clone())
        else:
            self.W_enc = nn.Parameter(F.normalize(torch.randn(d_in, d_sae, generator=g), dim=0) * norm)
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        thr = arch.init_threshold if isinstance(arch, JumpReLU) else 0.0
        self.log_threshold = nn.Parameter(torch.full((d_sae,), float(torch.tensor(max(thr, 1e-12)).log())),
                                          requires_grad=isinstance(arch, JumpReLU))
        # BatchTopK: running estimate of the smallest kept activation, the inference threshold.
        self.register_buffer("threshold_ema", torch.tensor(-1.0))

    @property
    def threshold(self) -> torch.Tensor:
        """(d_sae,) the JumpReLU threshold (BatchTopK: the learned global threshold)."""
        if isinstance(self.arch, BatchTopK):
            return self.threshold_ema.clamp_min(0).expand(self.d_sae)
        return self.log_threshold.exp()

    @property
    def aux_k(self) -> int:
        arch = self.arch
        return (arch.aux_k or self.d_in // 2) if isinstance(arch, TopK) else 0

    def pre_acts(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(x - b_dec) W_enc + b_enc; ``out`` (n x d_sae, no autograd) is reused instead of a fresh tensor, which on
        CPU saves the page faults of a new one (a third of the GEMM's time at d_sae 16,384)."""
        if out is None:
            return (x - self.b_dec) @ self.W_enc + self.b_enc
        return torch.matmul(x - self.b_dec, self.W_enc, out=out).add_(self.b_enc)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(n, d_sae) latents for inference (BatchTopK uses its threshold, as SAELens will)."""
        x = self._check(x, self.d_in, "encode")
        pre = self.pre_acts(x)
        match self.arch:
            case BatchTopK():
                return pre * (pre > self.threshold)
            case TopK():
                val, idx = self._topk(pre)
                return torch.zeros_like(pre).scatter(-1, idx, val)
            case JumpReLU():
                return pre * (pre > self.threshold)
            case ReLU():
                return pre.relu()
        raise TypeError(f"unknown architecture {self.arch!r}")

    def encode_topk(self, x: torch.Tensor, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A TopK SAE's latents as (values, indices), (n, k) each, columns ascending in each row: what
        ``encode`` scatters into a dense (n, d_sae) tensor, without building it. Values are >= 0 (a zero is an
        entry ReLU cut). ``out``: a scratch (n x d_sae) for the pre-activations, as in ``pre_acts``. BatchTopK and
        the other architectures have no fixed width: use ``encode``."""
        if type(self.arch) is not TopK:
            raise InputError(f"encode_topk needs a TopK SAE; this one is {arch_name(self.arch)}: use encode(x)")
        x = self._check(x, self.d_in, "encode")
        return self._topk(self.pre_acts(x, out))

    def _topk(self, pre: torch.Tensor, group: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's k largest pre-activations (ReLU'd) and their columns, ascending. With many columns, in two
        stages: the k groups of ``group`` columns with the largest maxima hold every top-k entry (each is >= the
        k-th largest group maximum), so top-k runs on k x group candidates instead of all d_sae columns (2.4x
        faster at 16,384 latents, k 32, on CPU). Exact; ties may pick another column of equal value."""
        k = min(self.arch.k, self.d_sae)
        if pre.dim() == 2 and pre.is_contiguous() and self.d_sae % group == 0 and self.d_sae // group >= 4 * k:
            n = pre.shape[0]
            groups = pre.view(n, -1, group).amax(-1).topk(k, dim=1, sorted=False).indices
            columns = (groups[:, :, None] * group + torch.arange(group, device=pre.device)).view(n, -1)
            val, pos = pre.gather(1, columns).topk(k, dim=1, sorted=False)
            idx = columns.gather(1, pos)
        else:
            val, idx = pre.topk(k, dim=-1, sorted=False)
        idx, order = idx.sort(dim=-1)
        return val.gather(-1, order).relu(), idx

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = self._check(z, self.d_sae, "decode")
        return z @ self.W_dec + self.b_dec

    def _check(self, t: Any, width: int, what: str) -> torch.Tensor:
        """``t`` as a tensor of the SAE's dtype on its device (numpy arrays and other float dtypes are converted);
        a wrong shape or a non-float input raises naming both."""
        if not isinstance(t, torch.Tensor):
            try:
                t = torch.as_tensor(np.asarray(t))
            except (TypeError, ValueError, RuntimeError) as e:
                raise InputError(f"{what} takes an (n, {width}) float tensor or array, got {type(t).__name__} "
                                 f"({e})") from None
        if not t.is_floating_point():
            raise InputError(f"{what} takes floating-point rows, got dtype {t.dtype}; e.g. x.float()")
        if t.dim() != 2 or t.shape[1] != width:
            raise ValueError(f"{what} expects shape (n, {width}), got {tuple(t.shape)}")
        weight = self.W_enc
        return t.to(device=weight.device, dtype=weight.dtype)

    def forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None = None) -> ForwardOutput:
        """The training forward: latents, reconstruction and every loss term."""
        match self.arch:
            case TopK():
                latents, recon, aux = self._topk_forward(x, dead_mask)
                sparsity = x.new_zeros(())
            case JumpReLU(l0_coefficient=lam, bandwidth=eps, target_l0=target):
                pre = self.pre_acts(x)
                theta = self.log_threshold.exp()
                latents = _Jump.apply(pre, theta, eps)
                recon = latents @ self.W_dec + self.b_dec
                l0 = _Step.apply(pre, theta, eps).sum(-1).mean()
                sparsity = lam * (l0 if target is None else self.d_in * (l0 / target - 1).pow(2))
                aux = x.new_zeros(())
            case ReLU(l1_coefficient=lam):
                latents = self.pre_acts(x).relu()
                recon = latents @ self.W_dec + self.b_dec
                sparsity = lam * (latents * self.W_dec.norm(dim=1)).sum(-1).mean()
                aux = x.new_zeros(())
            case _:
                raise TypeError(f"unknown architecture {self.arch!r}")
        mse = (recon - x).pow(2).sum(-1).mean()
        if isinstance(self.arch, MatryoshkaBatchTopK):
            prefix = self._prefix_loss(x, latents)
            return ForwardOutput(latents, recon, mse, sparsity, aux, mse + prefix + sparsity + aux, prefix)
        return ForwardOutput(latents, recon, mse, sparsity, aux, mse + sparsity + aux)

    def _prefix_loss(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Σ over the Matryoshka prefixes of the error when only the first w latents decode (sparse pairs)."""
        (rows, cols), values = latents._indices(), latents._values()      # the selected pairs, values >= 0
        total = x.new_zeros(())
        for width in self.arch.widths(self.d_sae):
            keep = cols < width
            recon = _PairDecode.apply(x, self.b_dec, self.W_enc, self.b_enc, self.W_dec, rows[keep], cols[keep],
                                      values[keep]) + self.b_dec
            total = total + (recon - x).pow(2).sum(-1).mean()
        return total

    def _topk_forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None):
        arch = self.arch
        b, n = x.shape[0], self.d_sae
        with torch.no_grad():
            pre = torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)  # the one dense GEMM
            if isinstance(arch, BatchTopK):
                flat = pre.relu().flatten()
                keep = flat.topk(min(arch.k * b, flat.numel()), sorted=False).indices
                rows, cols = keep // n, keep % n
            else:
                top = pre.topk(min(arch.k, n), dim=-1, sorted=False).indices
                rows, cols = torch.arange(b, device=x.device).repeat_interleave(top.shape[1]), top.flatten()
            pre_val = pre[rows, cols]
        if isinstance(arch, BatchTopK) and self.training and pre_val.numel():
            positive = pre_val[pre_val > 0]
            low = positive.min() if positive.numel() else pre_val.new_zeros(())
            ema = self.threshold_ema
            ema.copy_(low if float(ema) < 0 else 0.99 * ema + 0.01 * low)
        recon = _PairDecode.apply(x, self.b_dec, self.W_enc, self.b_enc, self.W_dec, rows, cols, pre_val) + self.b_dec
        latents = torch.sparse_coo_tensor(torch.stack([rows, cols]), pre_val.relu(), pre.shape, check_invariants=False)
        aux = self._aux_loss(x, pre, recon, dead_mask)
        return latents, recon, aux

    def _aux_loss(self, x, pre, recon, dead_mask) -> torch.Tensor:
        """AuxK (Gao et al. §A.2): reconstruct the residual with the top aux_k dead latents, normalised by the
        residual's variance and scaled by min(n_dead / aux_k, 1); sparse like the main path."""
        arch = self.arch
        if dead_mask is None or arch.aux_coefficient == 0 or not bool(dead_mask.any()):
            return x.new_zeros(())
        dead = dead_mask.nonzero().squeeze(1)
        kk = min(self.aux_k, len(dead))
        if len(dead) <= AUX_DENSE_MAX:
            # few dead latents (the usual case): dense over just those columns, B x n_dead GEMMs
            pre_dead = (x - self.b_dec) @ self.W_enc[:, dead] + self.b_enc[dead]
            val, pos = pre_dead.topk(kk, dim=-1, sorted=False)
            z = torch.zeros_like(pre_dead).scatter(-1, pos, val.relu())
            aux_recon = z @ self.W_dec[dead]
        else:  # many dead: the sparse pair path, O(B k_aux d)
            with torch.no_grad():
                pos = pre[:, dead].topk(kk, dim=-1, sorted=False).indices
                rows = torch.arange(x.shape[0], device=x.device).repeat_interleave(kk)
                cols = dead[pos].flatten()
                pre_val = pre[rows, cols]
            aux_recon = _PairDecode.apply(x, self.b_dec, self.W_enc, self.b_enc, self.W_dec, rows, cols, pre_val)
        residual = (x - recon).detach()
        variance = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        # with few dead latents the loss is scaled down (as sparsify does): min(n_dead / aux_k, 1)
        weight = arch.aux_coefficient * min(len(dead) / self.aux_k, 1.0)
        return weight * (aux_recon - residual).pow(2).sum(-1).mean() / variance

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Unit-norm decoder rows (TopK-style and JumpReLU); ReLU-L1 keeps its norms."""
        if not isinstance(self.arch, ReLU):
            self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the gradient component parallel to each (unit) decoder row."""
        if isinstance(self.arch, ReLU) or self.W_dec.grad is None:
            return
        w = self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        g = self.W_dec.grad
        g.sub_((g * w).sum(1, keepdim=True) * w)


def geometric_median(x: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of Euclidean distances to the rows."""
    y = x.mean(0)
    for _ in range(iters):
        w = 1.0 / (x - y).norm(dim=1).clamp_min(1e-8)
        y_new = (w[:, None] * x).sum(0) / w.sum()
        if (y_new - y).norm() <= tol * y.norm().clamp_min(1.0):
            return y_new
        y = y_new
    return y
