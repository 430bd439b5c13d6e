"""The game's two heavy passes, the denoiser and the decoder, run by ONNX Runtime on the CPU.

``on_onnx_runtime(model)`` exports both from the loaded torch model (about a second, nothing written
to disk), checks them against torch on a probe batch, and returns a model that samples and decodes
through them; encoding and the reward and end heads stay in torch. An env made with
``runtime="onnx"`` plays on it. On a 2-core CPU it ran the one-pass denoiser about twice as fast as
torch at batch 1 (bench/results/one_step.md).
"""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from worldmodel.model import WorldModel
from worldmodel.vae import tensor_to_frames

RUNTIMES = ("torch", "onnx")
TOLERANCE = 1e-3  # largest difference from torch on the probe batch; float32 kernels differ by ~1e-5


class OnnxRuntimeError(RuntimeError):
    """ONNX Runtime cannot run this model as torch does; runtime="torch" always can."""


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime '{runtime}'; choose one of {RUNTIMES}")
    return runtime


def session(module: nn.Module, inputs: tuple, names: list[str], threads: int):
    """An ONNX Runtime session of ``module`` exported with a free batch size."""
    import onnx
    import onnxruntime

    exported = io.BytesIO()
    axes = {name: {0: "batch"} for name in [*names, "output"]}
    with torch.no_grad(), warnings.catch_warnings():  # the TorchScript exporter: a second, where the
        # dynamo one takes ten (and gave NaNs at batch sizes it was not traced at); its notes on constant
        # folding concern the export, not the results, which are checked below
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, inputs, exported, dynamo=False, opset_version=18, input_names=names,
            output_names=["output"], dynamic_axes=axes,
        )  # fmt: skip
    graph = onnx.load_from_string(exported.getvalue())
    for node in graph.graph.node:  # the exporter writes movedim(1, -1) as perm [0, -1, 1, 2]; ORT wants 3
        if node.op_type == "Transpose":
            for attribute in node.attribute:
                if attribute.name == "perm":
                    attribute.ints[:] = [axis % len(attribute.ints) for axis in attribute.ints]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Threads that sleep when idle: spinning ones fight other programs for the cores (see use_threads).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(
        graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


class OnnxPass(nn.Module):
    """A torch module's forward run by an ONNX Runtime session: tensors in, a float32 tensor out."""

    def __init__(self, module: nn.Module, probe: tuple, names: list[str], threads: int):
        super().__init__()
        self.names = names
        self.session = session(module, probe, names, threads)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {name: x.detach().cpu().numpy() for name, x in zip(self.names, inputs, strict=True)}
        return torch.from_numpy(self.session.run(None, feed)[0])


class OnnxWorldModel(WorldModel):
    """A world model whose denoiser and decoder passes run in ONNX Runtime (made by ``on_onnx_runtime``)."""

    def draw(self, latents: torch.Tensor) -> torch.Tensor:
        # decode_latents' steps, with the session in place of vae.decode
        pixels = self.onnx_decoder(latents / self.vae.config.scaling_factor)
        return tensor_to_frames(pixels.float())


def on_onnx_runtime(model: WorldModel, threads: int = 1) -> OnnxWorldModel:
    """``model`` (on the CPU) with its denoiser and decoder exported to ONNX Runtime; the weights are
    shared, the torch model itself is unchanged. Raises OnnxRuntimeError where the exported passes
    disagree with torch."""
    if model.device.type != "cpu":
        raise ValueError(f"runtime='onnx' runs on the CPU; the model is on {model.device}")
    model = model.eval()
    s = model.settings
    batch = 3  # a batch size other than 1, so that the export keeps the batch free
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(batch, s.latent_channels, s.latent_size, s.latent_size, generator=generator)
    history = torch.randn(batch, s.history_length, *latents.shape[1:], generator=generator)
    actions = torch.randint(0, s.num_actions, (batch, s.action_window), generator=generator)
    probe = (latents, torch.rand(batch, generator=generator), history, actions, torch.full((batch,), 0.05))
    probe = (*probe, torch.tensor([False, True, False]))
    names = ["noisy_latents", "timesteps", "history_latents", "actions", "context_noise", "drop_actions"]
    fast = OnnxWorldModel(s, model.vae, model.denoiser.transformer, model.denoiser.conditioner, model.heads)
    fast.denoiser = OnnxPass(model.denoiser, probe, names, threads)
    fast.onnx_decoder = OnnxPass(model.vae.decoder, (latents,), ["latents"], threads)
    with torch.no_grad():
        for name, ours, theirs in (
            ("denoiser", fast.denoiser(*probe), model.denoiser(*probe)),
            ("decoder", fast.onnx_decoder(latents), model.vae.decoder(latents)),
        ):
            difference = float((ours - theirs).abs().max())
            if not difference <= TOLERANCE:  # NaN fails too
                raise OnnxRuntimeError(
                    f"the {name} run by ONNX Runtime differs from torch by {difference:.3g} on a probe "
                    "batch; play with runtime='torch' (play.py --runtime torch)"
                )
    return fast
