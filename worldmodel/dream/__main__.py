"""Train an agent in the dream: PPO learns Pacman inside the learned game (WorldModel-v0, batched)
and is scored in the real game, beside the same recipe trained on the real game and a random policy.

    python -m worldmodel.dream --steps 500000 --out reports/dream

Writes metrics.json, report.md, learning_curve.png and dream_agent.gif to --out; the agents,
their TensorBoard logs and their learning curves go to --out/agents and resume when run again.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from stable_baselines3 import PPO
from tqdm import tqdm

from worldmodel.checkpoint import CheckpointError
from worldmodel.contexts import ContextPool
from worldmodel.dream import report
from worldmodel.dream.agents import (
    EVALUATION_SEED,
    AgentContexts,
    RealGameCurve,
    Recipe,
    dream_vec_env,
    new_agent,
    policy_actor,
    real_vec_env,
    score_dream,
    score_real,
    wrap,
)
from worldmodel.env import DEFAULT_CHECKPOINT
from worldmodel.onnx_runtime import RUNTIMES, OnnxRuntimeError, on_onnx_runtime

KINDS = ("dream", "real")
# An agent needs hundreds of thousands of steps: the one-pass student steps about 4x faster than its
# teacher (bench/results/one_step.md) and follows keys as well on every family but random keys.
DREAM_NAME = "checkpoints/pacman-64-one-step"
DREAM_CHECKPOINT = DEFAULT_CHECKPOINT.parent.parent / DREAM_NAME


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worldmodel.dream", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        default=str(DREAM_CHECKPOINT),
        help="world model (default: the shipped one-pass checkpoints/pacman-64-one-step, the fastest)",
    )
    parser.add_argument("--steps", type=int, default=500_000, help="environment steps each agent trains for")
    parser.add_argument("--out", default="reports/dream", help="report directory (agents under OUT/agents)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both agents and their training envs")
    parser.add_argument(
        "--episodes", type=int, default=100, help="real-game episodes each agent is scored on"
    )
    parser.add_argument("--curve-every", type=int, default=50_000, help="steps between learning-curve points")
    parser.add_argument(
        "--curve-episodes", type=int, default=10, help="real episodes per learning-curve point"
    )
    parser.add_argument("--envs", type=int, default=Recipe.num_envs, help="games stepped together per agent")
    parser.add_argument(
        "--context", default="agent",
        help="where the learned game's episodes start: real (the real game's start), agent (the dream "
        "agent's own real-game play, refreshed as it learns), or a recorded .h5 file",
    )  # fmt: skip
    parser.add_argument(
        "--horizon", type=int, default=16,
        help="learned-game steps after which a training episode is cut short and its value bootstrapped "
        "(0: none, only the model's end head ends an episode)",
    )  # fmt: skip
    parser.add_argument(
        "--context-every", type=int, default=10_000, help="with --context agent: steps between refreshes"
    )
    parser.add_argument(
        "--context-episodes", type=int, default=4, help="with --context agent: real episodes per refresh"
    )
    parser.add_argument(
        "--dream-episodes", type=int, default=16,
        help="episodes each trained agent also plays in the learned game (what it believes it earns)",
    )  # fmt: skip
    parser.add_argument(
        "--dream-limit", type=int, default=1000, help="steps after which a learned-game episode is cut short"
    )
    parser.add_argument("--device", default="cpu", help="torch device of the agents and the world model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 stays fast on a busy CPU)")
    parser.add_argument(
        "--runtime", choices=RUNTIMES, default=None,
        help="onnx: the world model's denoiser and decoder run in ONNX Runtime, faster at one pass "
        "(default on the CPU; torch on other devices)",
    )  # fmt: skip
    parser.add_argument(
        "--agents", default=",".join(KINDS),
        help="which agents to train: dream,real (default); real alone checks the PPO recipe on the real game",
    )  # fmt: skip
    parser.add_argument(
        "--one-process", action="store_true",
        help="train the agents one after the other; by default the real-game agent trains in a second "
        "process beside the dream agent (each on one core: the command takes about as long as the dream agent)",
    )  # fmt: skip
    parser.add_argument(
        "--train-only", action="store_true", help="train and save the agents, no scoring or report"
    )
    args = parser.parse_args(argv)
    if args.runtime is None:
        args.runtime = "onnx" if args.device == "cpu" else "torch"
    if args.horizon < 0:
        parser.error("--horizon must be 0 (no cut) or positive")
    args.agents = tuple(kind.strip() for kind in args.agents.split(",") if kind.strip())
    if not args.agents or set(args.agents) - set(KINDS):
        parser.error(f"--agents takes a comma-separated subset of {', '.join(KINDS)}")
    if min(args.steps, args.episodes, args.curve_every, args.curve_episodes, args.envs, args.context_every,
           args.context_episodes, args.dream_episodes, args.dream_limit) < 1:  # fmt: skip
        parser.error(
            "--steps, --episodes, --dream-*, --curve-every, --curve-episodes, --envs and --context-* "
            "must be positive"
        )
    return args


class Saver(RealGameCurve):
    """The learning curve, plus the agent and its curve saved every ``every`` steps (resumable)."""

    def __init__(self, recipe, every, episodes, curve, directory: Path, bar):
        super().__init__(recipe, every, episodes, curve)
        self.directory, self.bar = directory, bar

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        if self.num_timesteps >= self._next:
            super()._on_step()
            save_agent(self.model, self.directory, self.curve)
        return True


def save_agent(agent: PPO, directory: Path, curve: list) -> None:
    """Weights, optimiser, reward statistics, step count and curve, as tensors and JSON only (nothing
    that runs code when loaded), each written to a temporary name and renamed."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {"policy": agent.policy.state_dict(), "optimizer": agent.policy.optimizer.state_dict()}
    torch.save(state, directory / "agent.tmp.pt")
    os.replace(directory / "agent.tmp.pt", directory / "agent.pt")
    returns = agent.get_env().ret_rms
    progress = {
        "num_timesteps": int(agent.num_timesteps),
        "n_updates": int(agent._n_updates),
        "return_mean": float(returns.mean),
        "return_var": float(returns.var),
        "return_count": float(returns.count),
        "curve": curve,
    }
    (directory / "progress.tmp.json").write_text(json.dumps(progress))
    os.replace(directory / "progress.tmp.json", directory / "progress.json")


def load_agent(agent: PPO, directory: Path) -> list:
    """Restores what ``save_agent`` wrote into a freshly made ``agent``; returns the curve so far."""
    state = torch.load(directory / "agent.pt", weights_only=True, map_location=agent.device)
    agent.policy.load_state_dict(state["policy"])
    agent.policy.optimizer.load_state_dict(state["optimizer"])
    progress = json.loads((directory / "progress.json").read_text())
    agent.num_timesteps, agent._n_updates = progress["num_timesteps"], progress["n_updates"]
    returns = agent.get_env().ret_rms
    returns.mean, returns.var, returns.count = (
        progress["return_mean"],
        progress["return_var"],
        progress["return_count"],
    )
    return progress["curve"]


def train_agent(kind: str, args, recipe: Recipe, model, out: Path) -> tuple[PPO, list]:
    directory = out / "agents" / kind
    callbacks = []
    if kind == "dream":
        context = ContextPool(model.settings) if args.context == "agent" else args.context
        base = dream_vec_env(model, recipe.num_envs, args.seed, context, args.horizon or None)
        if args.context == "agent":
            callbacks.append(
                AgentContexts(context, recipe, args.context_every, args.context_episodes, args.seed)
            )
    else:
        base = real_vec_env(recipe.num_envs, args.seed)
    venv = wrap(base, recipe)
    agent = new_agent(venv, recipe, args.seed, directory / "logs", args.device)
    if (directory / "agent.pt").is_file() and (directory / "progress.json").is_file():
        curve = load_agent(agent, directory)  # resume where the last run saved
    else:
        curve = [[0, score_real(policy_actor(agent), recipe, args.curve_episodes).summary()["mean_return"]]]
    remaining = args.steps - agent.num_timesteps
    with tqdm(
        total=args.steps, initial=agent.num_timesteps, desc=f"PPO in the {kind} game", unit="step"
    ) as bar:
        saver = Saver(recipe, args.curve_every, args.curve_episodes, curve, directory, bar)
        saver._next = (agent.num_timesteps // args.curve_every + 1) * args.curve_every
        if remaining > 0:
            agent.learn(remaining, callback=[saver, *callbacks], reset_num_timesteps=False, tb_log_name=kind)
    if curve[-1][0] < agent.num_timesteps:
        point = score_real(policy_actor(agent), recipe, args.curve_episodes).summary()["mean_return"]
        curve.append([int(agent.num_timesteps), point])
    save_agent(agent, directory, curve)
    venv.close()
    return agent, curve


def real_agent_process(args) -> tuple[subprocess.Popen, Path]:
    """Starts the real-game agent's training in a second process (its progress goes to a log file)."""
    log = Path(args.out) / "agents" / "real" / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "worldmodel.dream", "--agents", "real", "--train-only", "--out", args.out,
        "--steps", str(args.steps), "--seed", str(args.seed), "--envs", str(args.envs),
        "--curve-every", str(args.curve_every), "--curve-episodes", str(args.curve_episodes),
        "--device", args.device, "--threads", str(args.threads),
    ]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    print(f"the real-game agent trains in a second process (pid {process.pid}); progress in {log}")
    return process, log


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    recipe = Recipe(num_envs=args.envs)
    model = None
    if "dream" in args.agents:
        try:
            from worldmodel.env import load_world_model

            model = load_world_model(args.checkpoint, args.device)
            if args.runtime == "onnx":
                model = on_onnx_runtime(model, args.threads)
        except (CheckpointError, OnnxRuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    agents, curves = {}, {}
    second = real_agent_process(args) if set(args.agents) == set(KINDS) and not args.one_process else None
    try:
        for kind in sorted(args.agents):  # the dream first, while the real agent trains beside it
            if kind == "real" and second is not None:
                process, log = second
                if process.wait() != 0:
                    print(f"error: the real-game agent's process failed; see {log}", file=sys.stderr)
                    return 1
            agents[kind], curves[kind] = train_agent(kind, args, recipe, model, out)  # loads a finished one
    finally:
        if second is not None and second[0].poll() is None:
            second[0].terminate()  # interrupted: its last save stays, and the next run resumes it
    if args.train_only:
        return 0
    scores = {"random": score_real(None, recipe, args.episodes)}
    gif_frames = None
    for kind in args.agents:
        if kind == "dream":
            scores[kind], gif_frames = score_real(
                policy_actor(agents[kind]), recipe, args.episodes, record_first=True
            )
        else:
            scores[kind] = score_real(policy_actor(agents[kind]), recipe, args.episodes)
    in_dream = {}
    if model is not None:  # each trained agent in the learned game from the real start: what it is paid
        for kind in args.agents:
            score = score_dream(agents[kind], model, recipe, args.dream_episodes, "real", args.dream_limit)
            in_dream[kind] = {**score.summary(), "limit": args.dream_limit}
    command = "python -m worldmodel.dream " + shlex.join(argv if argv is not None else sys.argv[1:])
    metrics = {
        "steps": args.steps,
        "recipe": recipe.__dict__,
        # the shipped default by its name in the repository, not this machine's path
        "checkpoint": DREAM_NAME if Path(args.checkpoint) == DREAM_CHECKPOINT else args.checkpoint,
        "runtime": args.runtime,
        "context": args.context,
        "horizon": args.horizon,
        "evaluation_seeds": [EVALUATION_SEED, EVALUATION_SEED + args.episodes - 1],
        "curves": curves,
        "in_dream": in_dream,
        "command": command,
    }
    for kind, score in scores.items():
        summary = score.summary()
        metrics[f"{kind}_mean_return"] = summary["mean_return"]
        metrics[f"{kind}_return_interval"] = summary["return_interval"]
        metrics[kind] = summary
    if set(KINDS) <= set(args.agents):
        real = metrics["real_mean_return"]
        metrics["dream_to_real_ratio"] = metrics["dream_mean_return"] / real if real else float("nan")
    report.write(out, metrics, gif_frames)
    returns = ", ".join(f"{kind} {metrics[f'{kind}_mean_return']:.1f}" for kind in (*args.agents, "random"))
    print(f"wrote {out}: mean real-game return {returns}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
