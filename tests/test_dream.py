"""The dream experiment end to end on a tiny checkpoint and budget: every output written, the agents
saved in a form that loads (and resumes), the real game scored on unseen seeds."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import worldmodel.dream.__main__ as dream_command
from worldmodel.contexts import ContextPool
from worldmodel.dream import AgentFileError
from worldmodel.dream.__main__ import main as dream
from worldmodel.dream.agents import (
    EVALUATION_SEED,
    AgentPlayer,
    Recipe,
    frame_shape,
    new_agent,
    real_vec_env,
    score_real,
    trained_agent,
    wrap,
)


def test_the_command_trains_scores_and_reports(tiny_checkpoint, tmp_path):
    out = tmp_path / "dream"
    arguments = ["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--steps", "64", "--envs", "2",
                 "--episodes", "3", "--curve-every", "32", "--curve-episodes", "1", "--dream-episodes", "3",
                 "--dream-limit", "12"]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert dream(arguments) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        for kind in ("dream", "real", "random"):
            low, high = metrics[f"{kind}_return_interval"]
            assert low <= metrics[f"{kind}_mean_return"] <= high
            assert metrics[kind]["episodes"] == 3
        assert metrics["steps"] == 64
        for kind in ("dream", "real"):  # both agents also played in the learned game, cut at 12 steps
            in_dream = metrics["in_dream"][kind]
            assert in_dream["episodes"] == 3 and 0 < in_dream["mean_length"] <= 12
        assert "The same agents in the learned game itself (3 episodes" in (out / "report.md").read_text()
        for name in ("report.md", "learning_curve.png", "dream_agent.gif"):
            assert (out / name).stat().st_size > 0, name
        curve = metrics["curves"]["dream"]
        assert curve[0][0] == 0 and curve[-1][0] >= 64
        # Run again with a larger budget: each agent resumes from its saved step count.
        assert dream([*arguments[:5], "128", *arguments[6:]]) == 0
        progress = json.loads((out / "agents" / "dream" / "progress.json").read_text())
        assert progress["num_timesteps"] >= 128
        assert list((out / "agents" / "real" / "logs").rglob("events.out.tfevents*"))
        # The real-game agent trained in a second process beside the dream agent, with its own log.
        assert "PPO in the real game" in (out / "agents" / "real" / "train.log").read_text()
    finally:
        torch.set_num_threads(threads)


def test_the_dream_agent_can_start_its_games_from_its_own_real_play(tiny_checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "agent-contexts"
    arguments = ["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--steps", "32", "--envs", "2",
                 "--episodes", "2", "--curve-every", "32", "--curve-episodes", "1", "--agents", "dream",
                 "--context", "agent", "--context-every", "16", "--context-episodes", "1",
                 "--runtime", "onnx"]  # fmt: skip
    threads = torch.get_num_threads()
    collected, exported = [], []
    original_runtime = dream_command.on_onnx_runtime
    monkeypatch.setattr(
        dream_command, "on_onnx_runtime", lambda model, n: exported.append(n) or original_runtime(model, n)
    )
    original = ContextPool.add_episode
    monkeypatch.setattr(
        ContextPool, "add_episode", lambda pool, *a, **k: (collected.append(a[2]), original(pool, *a, **k))
    )
    try:
        assert dream(arguments) == 0
    finally:
        torch.set_num_threads(threads)
    assert exported == [1]  # the world model played in ONNX Runtime, on the command's one thread
    assert len(collected) >= 2  # before training, and refreshed during it
    assert all(seed < EVALUATION_SEED for seed in collected)  # never an evaluation seed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["context"] == "agent" and metrics["runtime"] == "onnx"
    report = (out / "report.md").read_text()
    assert "the dream agent's own real-game play" in report and "(run in onnx)" in report


def test_random_keys_score_the_same_on_the_same_seeds():
    recipe = Recipe(num_envs=1)
    first, again = score_real(None, recipe, 3), score_real(None, recipe, 3)
    np.testing.assert_array_equal(first.returns, again.returns)
    assert (first.pellets >= 0).all() and (first.lengths > 0).all()


def test_a_new_agent_acts_on_stacked_real_frames(tmp_path):
    recipe = Recipe(num_envs=2)
    venv = wrap(real_vec_env(2, seed=0), recipe)
    agent = new_agent(venv, recipe, seed=0, log_dir=tmp_path, device="cpu")
    observation = venv.reset()
    assert observation.shape == (2, 64, 64, 3 * recipe.frame_stack)
    actions, _ = agent.predict(observation)
    assert actions.shape == (2,) and ((actions >= 0) & (actions < 5)).all()


def test_the_real_game_agent_alone_checks_the_recipe(tmp_path):
    out = tmp_path / "recipe"
    arguments = ["--agents", "real", "--out", str(out), "--steps", "32", "--envs", "2", "--episodes", "2",
                 "--curve-every", "32", "--curve-episodes", "1"]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert dream(arguments) == 0
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "real_mean_return" in metrics and "dream" not in metrics and "dream_to_real_ratio" not in metrics
    report = (out / "report.md").read_text()
    assert "PPO trained in the real game" in report and "learned game |" not in report


def test_a_saved_agent_plays_one_frame_at_a_time_as_it_played_stacked(tmp_path):
    recipe = Recipe(num_envs=1)
    venv = wrap(real_vec_env(1, seed=0), recipe)
    agent = new_agent(venv, recipe, seed=0, log_dir=None, device="cpu")
    with torch.no_grad():  # a policy that prefers some keys, so that its choices are not uniform
        torch.nn.init.normal_(agent.policy.action_net.weight, std=1.0)
    dream_command.save_agent(agent, tmp_path / "dream", curve=[])
    loaded = trained_agent(tmp_path / "dream")
    frames = [venv.reset()[0, ..., -3:]]
    for action in (3, 3, 1, 0, 2):
        frames.append(venv.step(np.array([action]))[0][0, ..., -3:])
    stacked = np.concatenate(frames[2:6], axis=-1)[None]
    expected = agent.policy.get_distribution(agent.policy.obs_to_tensor(stacked)[0]).distribution.probs
    player = AgentPlayer(loaded, seed=3, before=np.stack(frames[:5]))
    seen = []
    original = loaded.policy.obs_to_tensor
    loaded.policy.obs_to_tensor = lambda observation: (seen.append(observation), original(observation))[1]
    keys = [player(frames[5])]
    np.testing.assert_array_equal(seen[0], stacked)  # the three frames before, then the one shown
    shown = loaded.policy.get_distribution(original(stacked)[0]).distribution.probs
    torch.testing.assert_close(shown, expected)  # the loaded policy is the saved one
    again = AgentPlayer(loaded, seed=3, before=np.stack(frames[:5]))
    keys += [player(frames[5]) for _ in range(20)]
    assert keys[:1] + [again(frames[5])] == keys[:1] * 2  # the same seed, the same first key
    assert all(0 <= key < 5 for key in keys) and len(set(keys)) > 1  # sampled, not argmax
    assert frame_shape(loaded) == (64, 64, 3)
    with pytest.raises(AgentFileError, match="frame size"):
        AgentPlayer(loaded, seed=0)(np.zeros((32, 32, 3), np.uint8))


def test_the_dream_cuts_episodes_at_the_horizon_and_bootstraps_them(tiny_checkpoint):
    from worldmodel.dream.agents import dream_vec_env
    from worldmodel.model import WorldModel

    venv = dream_vec_env(WorldModel.load(tiny_checkpoint), num_envs=2, seed=0, horizon=3)
    venv.reset()
    for step in range(1, 4):
        _, _, dones, infos = venv.step(np.array([1, 2]))
        assert dones.all() == (step == 3)  # the tiny model's end head never ends an episode itself
    # cut short, not ended: SB3 adds the value of the last frame to the reward there
    assert all(info["TimeLimit.truncated"] and "terminal_observation" in info for info in infos)
    venv.close()


def test_by_default_the_agent_dreams_in_the_fast_one_pass_model():
    args = dream_command.parse_args([])
    assert Path(args.checkpoint).name == "pacman-64-one-step" and Path(args.checkpoint).is_dir()
    assert args.runtime == "onnx" and args.context == "agent" and args.horizon == 16
    assert dream_command.parse_args(["--device", "cuda"]).runtime == "torch"  # ONNX Runtime runs on the CPU
