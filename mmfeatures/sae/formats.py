"""SAEs written by other tools, read into mmfeatures' ``SAE`` (docs/formats.md).

Each reader folds the tool's forward pass into the weights, so ``sae.encode`` and ``sae.decode`` compute what the
tool computes on raw activations, maps the tool's hook name to an mmfeatures site where it can, and refuses what
``SAE`` cannot represent (a skip connection, a transcoder, a gated encoder), naming the field.

    sparsify:<folder>               EleutherAI sparsify: cfg.json + sae.safetensors (a hookpoint folder, or a
                                    checkpoint folder holding one hookpoint folder)
    dictionary_learning:<folder>    saprmarks/dictionary_learning: ae.pt + config.json
    saev:<file or folder>           osu-nlp-group/saev: one JSON header line, then a torch state dict (sae.pt)
    <tool>:hf:<org>/<repo>/<path>   the same, from the Hugging Face cache
    saelens:<release>:<sae_id>      a SAELens release (io.read_saelens_release, mmfeatures.sae.releases)

A plain path is read by the reader whose layout ``detect_layout`` finds there.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import torch

from mmfeatures.errors import CorruptFileError, InputError
from mmfeatures.sae.modeling import SAE, Arch, JumpReLU, ReLU, TopK

LAYOUTS = {
    "saelens": ("a SAELens folder (cfg.json + sae_weights.safetensors)", ""),
    "sparsify": ("an EleutherAI sparsify folder (cfg.json + sae.safetensors)", "sparsify:"),
    "sparsify-checkpoint": ("an EleutherAI sparsify checkpoint (one cfg.json + sae.safetensors folder per "
                            "hookpoint)", "sparsify:"),
    "dictionary_learning": ("a dictionary_learning folder (ae.pt + config.json)", "dictionary_learning:"),
    "saev": ("a saev checkpoint (a JSON header line, then a torch state dict)", "saev:"),
}
"""Layout name -> (what it looks like, the load_sae prefix that reads it)."""
PREFIXES = ("sparsify:", "dictionary_learning:", "saev:", "saelens:")


RESAVE = "save the SAE again with the tool that wrote it (docs/formats.md lists the layouts read)"
"""The repair named by every error about a damaged or unreadable SAE file."""


def detect_layout(path: str | Path) -> str | None:
    """Which tool's layout ``path`` holds (a key of LAYOUTS), or None.

    >>> detect_layout("/nonexistent") is None
    True
    """
    path = Path(path)
    if path.is_file():
        if _saev_header(path) is not None:
            return "saev"
        if path.name in ("sae_weights.safetensors", "sae.safetensors", "ae.pt", "cfg.json", "config.json"):
            return detect_layout(path.parent)
        return None
    if not path.is_dir():
        return None
    if (path / "cfg.json").is_file() and (path / "sae_weights.safetensors").is_file():
        return "saelens"
    if (path / "cfg.json").is_file() and (path / "sae.safetensors").is_file():
        return "sparsify"
    if (path / "ae.pt").is_file():
        return "dictionary_learning"
    if (path / "sae.pt").is_file() and _saev_header(path / "sae.pt") is not None:
        return "saev"
    if _hookpoints(path):
        return "sparsify-checkpoint"
    return None


def _expect(path: Path, wanted: tuple[str, ...], reader: str) -> str:
    """The layout at ``path`` if it is one of ``wanted``; otherwise an error naming what it looks like."""
    found = detect_layout(path)
    if found in wanted:
        return found
    want = LAYOUTS[wanted[0]][0]
    if found is not None:
        what, prefix = LAYOUTS[found]
        raise InputError(f"{reader} reads {want}, but {path} looks like {what}; use load_sae('{prefix}{path}')")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; {reader} reads {want}")
    held = sorted(p.name for p in path.iterdir())[:8] if path.is_dir() else [path.name]
    raise InputError(f"{reader} reads {want}, but {path} is not one (it holds {held}); see docs/formats.md")


# -- sites ------------------------------------------------------------------------------------------------------

_KINDS = {"": "resid", "mlp": "mlp", "mlp_out": "mlp", "self_attn": "attn", "attn": "attn", "attention": "attn",
          "attn_out": "attn", "resid_post": "resid"}
_VISION = re.compile(r"vit|clip|dino|siglip|vision", re.I)


def site_from_hook(tool: str, hook: str | None, model: str | None = None) -> str | None:
    """The mmfeatures site a tool's hook name denotes, or None where there is none (embeddings, resid_pre of
    block 0, resid_mid, heads). ``text.layer.N.resid`` is block N's output (``hidden_states[N + 1]``).

    >>> site_from_hook("sparsify", "gpt_neox.layers.6"), site_from_hook("saelens", "blocks.6.hook_resid_pre")
    ('text.layer.6.resid', 'text.layer.5.resid')
    """
    if hook is None:
        return None
    modality = "image" if tool == "saev" or _VISION.search(model or "") else "text"
    if tool == "sparsify":                      # module paths: layers.6, model.layers.6.mlp, transformer.h.6
        m = re.fullmatch(r"(?:.*\.)?(?:layers|h|blocks)\.(\d+)(?:\.(mlp|self_attn|attn|attention))?", hook)
        return f"{modality}.layer.{m.group(1)}.{_KINDS[m.group(2) or '']}" if m else None
    if tool == "saelens":
        m = re.fullmatch(r"blocks\.(\d+)\.hook_(resid_post|resid_pre|mlp_out|attn_out)", hook)
        if not m:
            return None
        layer, kind = int(m.group(1)), m.group(2)
        if kind == "resid_pre":                 # block N's input is block N-1's output
            return f"{modality}.layer.{layer - 1}.resid" if layer > 0 else None
        return f"{modality}.layer.{layer}.{_KINDS[kind]}"
    if tool in ("dictionary_learning", "saev"):  # hook given as 'resid_post_layer_3' or a bare layer number
        m = re.fullmatch(r"(?:(resid_post|mlp_out|attn_out|mlp|attn)_layer_)?(\d+)", hook)
        return f"{modality}.layer.{m.group(2)}.{_KINDS[m.group(1) or '']}" if m else None
    raise AssertionError(f"unknown tool {tool!r}")


def is_site(name: str) -> bool:
    """Whether ``name`` is an mmfeatures site ('text.layer.6.resid', 'image.embed')."""
    from mmfeatures.types import Site

    try:
        Site.parse(name)
    except ValueError:
        return False
    return True


def describe(sae: SAE, tool: str, path: Any, *, hook: str | None, tool_model: str | None, model: str | None,
             site: str | None, **extra: Any) -> SAE:
    """Set ``sae.metadata`` for an SAE from ``tool``: model_name and hook_name as mmfeatures names them (what
    check_compatible compares with a store), the tool's own names under ``source``, and a note where a name could not
    be mapped. ``model``/``site`` are the caller's overrides."""
    if site is not None and not is_site(site):
        raise InputError(f"site={site!r} is not an mmfeatures site; give e.g. 'text.layer.6.resid' or 'image.embed'")
    own = hook if hook and is_site(hook) else None    # a folder mmfeatures wrote names its site already
    mapped = site or own or site_from_hook(tool, hook, tool_model)
    notes = []
    if mapped is None:
        notes.append(f"the hook {hook!r} has no mmfeatures site; pass site='text.layer.N.resid' (or the site it was "
                     "trained on) to load_sae")
    if model is None and tool_model is None:
        notes.append(f"{tool} does not record the model; pass model='hf:<org>/<model>' to load_sae")
    sae.metadata = {"model_name": model or tool_model, "hook_name": mapped or hook, "site": mapped,
                    "modality": mapped.split(".")[0] if mapped else None,
                    "source": {"tool": tool, "path": str(path), "hook_name": hook, "model_name": tool_model, **extra},
                    **({"note": "; ".join(notes)} if notes else {})}
    sae.key, sae.inputs = None, {}
    return sae.eval().requires_grad_(False)


def load_tensors(source: Any, where: Any) -> Any:
    """``torch.load`` of tensors and plain containers only (``weights_only``): a file that needs more (a pickled
    class, a planted payload) is refused without running any of it, with a message that says what to do instead of
    torch's own advice to turn the safety off."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types; the refused-pickle one is named below
        if type(e).__name__ != "UnpicklingError":
            raise CorruptFileError(f"{where} is not a readable torch file ({type(e).__name__}: {e}); it is damaged "
                                   f"or of another format; {RESAVE}") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CorruptFileError(
            f"{where} holds pickled Python objects{what} besides tensors; mmfeatures never unpickles a file it did not "
            "write (unpickling can run code). Save the weights as tensors where the file was made, e.g. "
            "torch.save(obj.state_dict(), 'weights.pt') or safetensors, and load that") from None


# -- building an SAE from folded tensors ---------------------------------------------------------------------------

def build(arch: Arch, W_enc_df: torch.Tensor, b_enc_f: torch.Tensor, W_dec_fd: torch.Tensor, b_dec_d: torch.Tensor,
          threshold_f: torch.Tensor | None = None, where: Any = "") -> SAE:
    """An SAE computing ``arch((x - b_dec) W_enc + b_enc)`` and ``z W_dec + b_dec``; shapes are checked."""
    d_in, d_sae = W_enc_df.shape
    want = {"W_enc": ((d_in, d_sae), W_enc_df), "b_enc": ((d_sae,), b_enc_f), "W_dec": ((d_sae, d_in), W_dec_fd),
            "b_dec": ((d_in,), b_dec_d)}
    if threshold_f is not None:
        want["threshold"] = ((d_sae,), threshold_f)
    for name, (shape, t) in want.items():
        if tuple(t.shape) != shape:
            raise CorruptFileError(f"{where}: {name} has shape {tuple(t.shape)}, expected {shape} for d_in {d_in}, "
                                   f"{d_sae} latents; the file is damaged or of another layout; {RESAVE}")
    if isinstance(arch, TopK) and arch.k > d_sae:
        raise CorruptFileError(f"{where}: k = {arch.k} exceeds the {d_sae} latents; {RESAVE}")
    sae = SAE(d_in, d_sae, arch)
    with torch.no_grad():
        for name, (_, t) in want.items():
            if name == "threshold":     # a threshold <= 0 keeps every positive pre-activation, as ReLU does
                sae.log_threshold.copy_(t.float().clamp_min(1e-30).log())
            else:
                getattr(sae, name).copy_(t.float())
    return sae


def _tensor(state: dict[str, Any], key: str, where: Any) -> torch.Tensor:
    if key not in state:
        raise CorruptFileError(f"{where} lacks tensor {key!r} (has {sorted(state)}); {RESAVE}")
    return state[key].detach().float()


# -- EleutherAI sparsify ----------------------------------------------------------------------------------------

def _hookpoints(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if (p / "cfg.json").is_file() and (p / "sae.safetensors").is_file())


def read_sparsify(path: str | Path, hookpoint: str | None = None, *, model: str | None = None,
                  site: str | None = None) -> SAE:
    """An EleutherAI sparsify SAE: a hookpoint folder, or a checkpoint folder and a ``hookpoint`` in it.

    sparsify encodes top-k(ReLU((x - b_dec) W_encoder^T + b_encoder)) and decodes z W_dec + b_dec: a TopK SAE with
    W_enc = encoder.weight^T. Transcoders, skip connections and groupmax activations are refused."""
    from safetensors.torch import load_file

    folder = Path(path) / hookpoint if hookpoint else Path(path)
    if _expect(folder, ("sparsify", "sparsify-checkpoint"), "read_sparsify") == "sparsify-checkpoint":
        points = _hookpoints(folder)
        if len(points) != 1:
            raise InputError(f"{folder} holds SAEs for {len(points)} hookpoints {points[:12]}; pick one: "
                             f"load_sae('sparsify:{folder / points[0]}') or read_sparsify({str(folder)!r}, "
                             f"{points[0]!r})")
        folder = folder / points[0]
    cfg = _json_object(folder / "cfg.json")
    for field, bad in (("transcode", True), ("skip_connection", True), ("signed", True), ("activation", "groupmax")):
        if cfg.get(field, None) == bad:
            raise InputError(f"{folder / 'cfg.json'}: {field} = {bad!r}; mmfeatures' SAE has no "
                             f"{'transcoder' if field == 'transcode' else field.replace('_', ' ')} (it encodes and "
                             "decodes one site with a TopK/ReLU/JumpReLU code); load it with sparsify itself")
    state = load_file(str(folder / "sae.safetensors"))
    where = folder / "sae.safetensors"
    if "W_skip" in state:
        raise InputError(f"{where} holds a skip connection (W_skip); mmfeatures' SAE has none: load it with sparsify")
    if "W_dec" not in state:
        raise InputError(f"{where} has no decoder (W_dec; saved with decoder=False); mmfeatures' SAE needs one")
    k = cfg.get("k")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise CorruptFileError(f"{folder / 'cfg.json'}: k = {k!r}; sparsify SAEs keep the top k >= 1 latents; {RESAVE}")
    W_enc_fd = _tensor(state, "encoder.weight", where)
    sae = build(TopK(k=k), W_enc_fd.T, _tensor(state, "encoder.bias", where), _tensor(state, "W_dec", where),
                _tensor(state, "b_dec", where), where=where)
    run = folder.parent / "config.json"         # the training run's config, when the checkpoint kept it
    tool_model = _json_object(run).get("model") if run.is_file() else None    # RunConfig.model: a hub name
    return describe(sae, "sparsify", folder, hook=folder.name, tool_model=f"hf:{tool_model}" if
                    isinstance(tool_model, str) else None, model=model, site=site, k=k,
                    multi_topk=bool(cfg.get("multi_topk", False)))


# -- saprmarks/dictionary_learning ------------------------------------------------------------------------------

DICTIONARY_CLASSES = ("AutoEncoder", "AutoEncoderNew", "AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE",
                      "JumpReluAutoEncoder")


def read_dictionary_learning(path: str | Path, *, model: str | None = None, site: str | None = None) -> SAE:
    """A dictionary_learning SAE: ``ae.pt`` (a state dict) and ``config.json`` whose ``trainer.dict_class`` names
    its class. Each class's inference forward (``encode`` with its defaults) is folded into an mmfeatures SAE:

    - AutoEncoder: ReLU((x - bias) E^T + e), decoded z D^T + bias                              -> ReLU
    - AutoEncoderNew: ReLU(x E^T + e), decoded z D^T + d                                       -> ReLU
    - AutoEncoderTopK: top-k of ReLU((x - b_dec) E^T + e)                                      -> TopK(k)
    - BatchTopKSAE, MatryoshkaBatchTopKSAE: ReLU(pre) where ReLU(pre) > threshold (a scalar)   -> JumpReLU
    - JumpReluAutoEncoder: ReLU(pre 1[pre > threshold]) ||W_dec_i||, pre = x W_enc + b_enc (b_dec not subtracted),
      decoded (z / ||W_dec_i||) W_dec + b_dec                                                  -> JumpReLU
    """
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    _expect(folder, ("dictionary_learning",), "read_dictionary_learning")
    where = folder / "ae.pt"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has ae.pt but no config.json; dictionary_learning writes both, and "
                                "config.json's trainer.dict_class names the architecture")
    trainer = _json_object(folder / "config.json").get("trainer")
    if not isinstance(trainer, dict) or not isinstance(trainer.get("dict_class"), str):
        raise CorruptFileError(f"{folder / 'config.json'} has no trainer.dict_class; expected dictionary_learning's "
                               f"config.json ({'trainer': {'dict_class': ..., ...}, 'buffer': ...}); {RESAVE}")
    name = trainer["dict_class"]
    state = load_tensors(where, where)
    if not isinstance(state, dict):
        raise CorruptFileError(f"{where} holds a {type(state).__name__}, not a state dict; {RESAVE}")
    state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}   # saved from a torch.compile'd model

    def t(key: str) -> torch.Tensor:
        return _tensor(state, key, where)

    threshold = None
    if name in ("AutoEncoder", "AutoEncoderNew", "AutoEncoderTopK", "BatchTopKSAE"):
        W_enc, b_enc, W_dec = t("encoder.weight").T, t("encoder.bias"), t("decoder.weight").T
        b_dec = t("bias") if name == "AutoEncoder" else t("decoder.bias") if name == "AutoEncoderNew" else t("b_dec")
        if name == "AutoEncoderNew":            # encodes x, not x - b_dec
            b_enc = b_enc + b_dec @ W_enc
    elif name in ("MatryoshkaBatchTopKSAE", "JumpReluAutoEncoder"):
        W_enc, b_enc, W_dec, b_dec = t("W_enc"), t("b_enc"), t("W_dec"), t("b_dec")
    else:
        raise InputError(f"{folder / 'config.json'}: dict_class {name!r} is not an SAE mmfeatures can represent; "
                         f"supported: {', '.join(DICTIONARY_CLASSES)}")
    arch: Arch = ReLU()
    if name == "AutoEncoderTopK":
        arch = TopK(k=int(t("k")))
    elif name in ("BatchTopKSAE", "MatryoshkaBatchTopKSAE") and float(t("threshold")) >= 0:
        arch, threshold = JumpReLU(), t("threshold").expand(W_enc.shape[1])   # < 0: never calibrated, plain ReLU
    elif name == "JumpReluAutoEncoder":
        norm = W_dec.norm(dim=1)                # encode multiplies by it, decode divides by it
        if not bool((norm > 0).all()):
            raise CorruptFileError(f"{where}: {int((norm == 0).sum())} decoder rows are zero; dictionary_learning's "
                                   f"JumpReLU divides by their norms; {RESAVE}")
        b_enc = b_enc + b_dec @ W_enc           # encodes x, not x - b_dec (apply_b_dec_to_input is False)
        W_enc, b_enc, W_dec = W_enc * norm, b_enc * norm, W_dec / norm[:, None]
        arch, threshold = JumpReLU(), t("threshold").clamp_min(0) * norm
    sae = build(arch, W_enc, b_enc, W_dec, b_dec, threshold, where=where)
    layer, submodule = trainer.get("layer"), trainer.get("submodule_name")
    hook = (submodule if isinstance(submodule, str) and submodule else None) or \
        (str(layer) if isinstance(layer, int) else None)   # a bare layer: the residual stream, as SAELens assumes
    lm = trainer.get("lm_name")
    return describe(sae, "dictionary_learning", folder, hook=hook, tool_model=f"hf:{lm}" if isinstance(lm, str) else
                    None, model=model, site=site, dict_class=name, layer=layer)


# -- osu-nlp-group/saev ---------------------------------------------------------------------------------------------

def _saev_header(path: Path) -> dict[str, Any] | None:
    """The JSON header line of a saev checkpoint, or None if ``path`` is not one."""
    with open(path, "rb") as f:
        if f.read(1) != b"{":
            return None
        line = b"{" + f.readline(1 << 20)
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) else None


def read_saev(path: str | Path, *, model: str | None = None, site: str | None = None) -> SAE:
    """A saev SAE (``saev.nn.modeling.dump``): a JSON header line then ``torch.save(state_dict)``.

    saev encodes activation(x W_enc + b_enc); files written before header schema 2 came from versions that
    encoded (x - b_dec) W_enc + b_enc, and are read that way. Relu -> ReLU; TopK and the per-sample BatchTopK of
    schema 2 -> TopK(k) (saev keeps the k largest pre-activations even when negative, mmfeatures zeroes those: the
    same whenever a row's k-th largest pre-activation is >= 0); BatchTopK with a learned threshold (its inference
    JumpReLU) -> JumpReLU. The layer comes from the run's checkpoint/config.json when it sits beside the file."""
    file = Path(path)
    _expect(file, ("saev",), "read_saev")
    file = file / "sae.pt" if file.is_dir() else file
    header = _saev_header(file)
    assert header is not None, f"{file}: detect_layout said saev but the header does not parse"
    with open(file, "rb") as f:
        f.readline()
        state = load_tensors(io.BytesIO(f.read()), file)
    schema = header.get("schema")
    cfg = header.get("cfg", header) if isinstance(schema, int) else header
    activation = cfg.get("activation") if isinstance(cfg.get("activation"), dict) else {}
    kind = header.get("cls") if schema == 1 and header.get("cls") in ("Relu", "TopK", "BatchTopK") else \
        activation.get("cls", "Relu")
    params = activation.get("params", {}) if activation else cfg
    W_enc, b_enc, W_dec, b_dec = (_tensor(state, key, file) for key in ("W_enc", "b_enc", "W_dec", "b_dec"))
    if isinstance(schema, int) and schema >= 2:     # encodes x W_enc + b_enc; legacy files (x - b_dec) W_enc + b_enc
        b_enc = b_enc + b_dec @ W_enc
    threshold = None
    if kind == "Relu":
        arch: Arch = ReLU()
    elif kind in ("TopK", "BatchTopK") and "activation.threshold" not in state:
        arch = TopK(k=min(int(params.get("top_k", 32)), W_enc.shape[1]))
    elif kind == "BatchTopK":
        theta = float(_tensor(state, "activation.threshold", file))
        arch, threshold = (JumpReLU(), torch.full((W_enc.shape[1],), theta)) if theta > 0 else (ReLU(), None)
    else:
        raise InputError(f"{file}: saev activation {kind!r} is not one mmfeatures can represent; supported: Relu, "
                         "TopK, BatchTopK")
    sae = build(arch, W_enc, b_enc, W_dec, b_dec, threshold, where=file)
    run = file.parent / "config.json"
    run_cfg = _json_object(run) if run.is_file() else {}
    section = "train_data" if "train_data" in run_cfg else "data"          # saev 0.1.0's training.py names it "data"
    train_data = run_cfg.get(section, {})
    for flag, what in (("scale_norm", "rescaled to norm sqrt(d)"), ("scale_mean", "minus the dataset's mean")):
        if isinstance(train_data, dict) and train_data.get(flag):
            raise InputError(f"{run}: {section}.{flag} is true: the SAE reads activations {what}, which is not stored "
                             "with it; mmfeatures can only read SAEs trained on raw activations")
    layer = train_data.get("layer") if isinstance(train_data, dict) else None
    hook = str(layer) if isinstance(layer, int) and not isinstance(layer, bool) and layer >= 0 else None
    return describe(sae, "saev", file, hook=hook, tool_model=None, model=model, site=site, schema=schema,
                    activation=kind, layer=layer)


# -- dispatch ---------------------------------------------------------------------------------------------------

def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"{path} is not valid JSON ({e}); {RESAVE}") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path} holds a JSON {type(data).__name__}, not an object; {RESAVE}")
    return data


def _local(spec: str, tool: str) -> Path:
    """A local path for ``spec``: the path itself, or ``hf:<org>/<repo>/<path>`` from the Hugging Face cache."""
    if not spec.startswith("hf:"):
        return Path(spec).expanduser()
    from mmfeatures.sae.releases import fetch

    parts = spec[3:].strip("/").split("/")
    if len(parts) < 2:
        raise InputError(f"{tool}:{spec}: use '{tool}:hf:<org>/<repo>' or '{tool}:hf:<org>/<repo>/<path in repo>'")
    return fetch("/".join(parts[:2]), "/".join(parts[2:]), f"{tool}:{spec}")


def load_external(name: str, *, model: str | None = None, site: str | None = None) -> SAE | None:
    """The SAE a ``sparsify:``, ``dictionary_learning:`` or ``saev:`` name, or a plain path in one of their
    layouts, denotes; None for anything else (a SAELens folder or release, an mmfeatures name): load_sae reads those."""
    readers = {"sparsify": read_sparsify, "sparsify-checkpoint": read_sparsify,
               "dictionary_learning": read_dictionary_learning, "saev": read_saev}
    for prefix in PREFIXES[:3]:
        if name.startswith(prefix):
            tool = prefix[:-1]
            return readers[tool](_local(name[len(prefix):], tool), model=model, site=site)
    layout = detect_layout(Path(name).expanduser())
    if layout in readers:
        return readers[layout](Path(name).expanduser(), model=model, site=site)
    return None
