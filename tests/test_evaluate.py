"""The evaluation: its scores on constructed frames and states with known answers, the scripted
maze circuit in the real game, and the command end to end on a tiny checkpoint and recording."""

import json
import math

import numpy as np
import pytest
import torch

import envs
from envs.maze import DOWN, GRID, LEFT, NOOP, PACMAN_NEXT_TILE, PACMAN_START, RIGHT, TILE, UP, WALLS
from recorder import TrajectoryWriter
from recorder.__main__ import main as record
from worldmodel.checkpoint import load
from worldmodel.dream.__main__ import save_agent
from worldmodel.dream.agents import Recipe, new_agent, real_vec_env, wrap
from worldmodel.evaluate import families as fam
from worldmodel.evaluate.__main__ import main as evaluate
from worldmodel.evaluate.control import MOVES, MazeCircuit, classify_move, first_misses_by_move
from worldmodel.evaluate.drift import drift
from worldmodel.evaluate.episodes import choose_contexts, load_held_out
from worldmodel.evaluate.families import delta_psnr
from worldmodel.evaluate.fidelity import Rollouts
from worldmodel.evaluate.game_metrics import (
    at_step,
    pacman_tile_count,
    pellet_reappearances,
    per_step_mean,
    share_interval,
    tile_agreement,
    tile_misses,
    wall_agreement,
)
from worldmodel.metrics import pooled_psnr, precision_recall
from worldmodel.model import WorldModel

REQUIRED_KEYS = (
    "psnr_teacher_forced",
    "psnr_copy_last",
    "ssim_teacher_forced",
    "pacman_tile_agreement_at_16",
    "wall_agreement_at_1000",
    "reward_precision",
    "reward_recall",
    "end_precision",
    "end_recall",
    "step_fps",
)
FAMILY_KEYS = (
    "psnr_teacher_forced",
    "psnr_copy_last",
    "delta_psnr_at_4",
    "delta_psnr_at_16",
    "pacman_tile_agreement_at_16",
    "pacman_tile_agreement_at_64",
    "pacman_missing_at_16",
    "ghost_count_agreement",
    "ghost_tile_agreement_at_16",
)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    frame, _ = envs.PacmanEnv().reset(seed=0)
    return frame


def tile_pixels(frame, tile):
    row, col = tile
    return frame[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]


def state(pellets=(), ghosts=(), pacman=None) -> envs.PacmanState:
    mask = np.zeros((GRID, GRID), dtype=bool)
    for tile in pellets:
        mask[tile] = True
    return envs.PacmanState(pacman, tuple(ghosts), mask, WALLS.copy(), np.zeros_like(mask))


# ---- scores on constructed cases ------------------------------------------------------------------
def test_a_frame_without_pacman_disagrees_and_has_no_single_pacman(frame):
    removed = frame.copy()
    tile_pixels(removed, PACMAN_START)[:] = 0
    real, generated = envs.parse_frame(frame), envs.parse_frame(removed)
    assert tile_agreement([real, generated], [real, real]).tolist() == [True, False]
    assert pacman_tile_count(frame) == 1
    assert pacman_tile_count(removed) == 0


def test_misses_tell_a_lost_pacman_from_a_wrong_move():
    real = state(pacman=(1, 1))
    generated = [state(pacman=(1, 1)), state(pacman=None), state(pacman=(1, 2)), state(pacman=(3, 3))]
    assert tile_misses(generated, [real] * 4) == {"missing": 1, "elsewhere": 2}
    # A real frame with no Pacman (caught by a ghost) is nobody's miss.
    assert tile_misses([state(pacman=None)], [state(pacman=None)]) == {"missing": 0, "elsewhere": 0}


def test_a_share_interval_matches_wilson_and_narrows_with_more_rollouts():
    assert share_interval(9, 10) == pytest.approx((0.5958, 0.9821), abs=1e-4)
    assert share_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    low, high = share_interval(324, 360)  # 0.90 on the evaluation's 360 rollouts
    assert high - low < 0.07 < share_interval(108, 120)[1] - share_interval(108, 120)[0]
    assert all(math.isnan(bound) for bound in share_interval(0, 0))


def test_contexts_per_episode_leave_room_for_the_horizon():
    class Episode:
        def __init__(self, length):
            self.frames = np.zeros((length, 1))

    episodes = [Episode(100), Episode(30), Episode(10)]
    contexts = choose_contexts(episodes, 4, 20, np.random.default_rng(0), per_episode=3)
    assert [c.episode for c in contexts] == episodes * 3
    for context in contexts:
        room = len(context.episode.frames) - 4 - 20
        assert context.start <= max(room, 0)


def test_a_duplicated_pacman_counts_two_tiles(frame):
    doubled = frame.copy()
    tile_pixels(doubled, (14, 2))[:] = tile_pixels(frame, PACMAN_START)
    assert pacman_tile_count(doubled) == 2


def test_wall_agreement_is_the_share_of_matching_tiles(frame):
    parsed = envs.parse_frame(frame)
    assert wall_agreement(parsed, WALLS) == 1.0
    broken = envs.PacmanState(
        parsed.pacman, parsed.ghosts, parsed.pellets, ~parsed.walls, parsed.power_pellets
    )
    assert wall_agreement(broken, WALLS) == 0.0
    one_row_wrong = WALLS.copy()
    one_row_wrong[5] = ~one_row_wrong[5]
    assert wall_agreement(state(), one_row_wrong) == 1 - GRID / GRID**2


def test_an_eaten_pellet_that_comes_back_is_counted_once():
    tile = (1, 1)
    states = [state([tile]), state([]), state([tile]), state([]), state([tile])]
    assert pellet_reappearances(states) == 1


def test_pellets_hidden_by_a_ghost_or_pacman_are_not_eaten():
    tile = (1, 1)
    assert pellet_reappearances([state([tile]), state([], ghosts=[tile]), state([tile])]) == 0
    assert pellet_reappearances([state([tile]), state([], pacman=tile), state([])]) == 0


def test_the_real_game_never_brings_a_pellet_back():
    game = envs.PacmanEnv()
    frame, _ = game.reset(seed=3)
    explorer = envs.Explorer(seed=3)
    states = [envs.parse_frame(frame)]
    for _ in range(80):
        frame, _, terminated, _, _ = game.step(explorer(frame))
        states.append(envs.parse_frame(frame))
        if terminated:
            break
    assert pellet_reappearances(states) == 0


def test_precision_and_recall_on_small_arrays():
    assert precision_recall([1, 1, 0, 0], [1, 0, 1, 0]) == (0.5, 0.5)
    assert precision_recall([1, 1, 1, 0], [1, 1, 0, 0]) == (2 / 3, 1.0)
    assert precision_recall([0, 0], [1, 0]) == (
        0.0,
        0.0,
    )  # nothing predicted: precision 0, as in training logs


def test_per_step_mean_ignores_steps_a_rollout_did_not_reach():
    values = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    valid = np.array([[True, True, True], [True, True, False]])
    curve = per_step_mean(values, valid)
    assert curve.tolist() == [0.5, 0.5, 1.0]
    assert at_step(curve, 3) == 1.0 and math.isnan(at_step(curve, 4))


def test_the_maze_circuit_always_moves_pacman():
    game = envs.PacmanEnv()
    frame, _ = game.reset(seed=0)
    circuit = MazeCircuit()
    tiles = [game.state.pacman]
    for _ in range(40):
        frame, _, terminated, _, _ = game.step(circuit(frame))
        tiles.append(game.state.pacman)
        if terminated:
            break
    assert len(tiles) > 5  # a ghost soon catches Pacman on this route from the start
    assert all(a != b for a, b in zip(tiles, tiles[1:], strict=False))


def test_each_real_move_is_told_apart():
    row, col = PACMAN_START
    ahead = {h: PACMAN_NEXT_TILE[row][col][h] for h in (UP, RIGHT, LEFT, DOWN)}
    open_ways = [h for h, tile in ahead.items() if tile is not None]
    came = open_ways[0]  # Pacman arrived at the start tile from this side, heading the other way
    before = ahead[came]
    heading = {UP: DOWN, DOWN: UP, LEFT: RIGHT, RIGHT: LEFT}[came]
    for h in open_ways:
        if h == came:
            assert classify_move(before, PACMAN_START, ahead[h], h) == "reversal"
        elif h == heading:
            assert classify_move(before, PACMAN_START, ahead[h], NOOP) == "straight"
            assert classify_move(before, PACMAN_START, ahead[h], h) == "straight"
            for refused in {UP, RIGHT, LEFT, DOWN} - set(open_ways):  # a key into a wall: he goes on
                assert classify_move(before, PACMAN_START, ahead[h], refused) == "straight, key refused"
        else:
            assert classify_move(before, PACMAN_START, ahead[h], h) == "turn, key now"
            assert classify_move(before, PACMAN_START, ahead[h], NOOP) == "turn, key earlier"
    assert classify_move(before, PACMAN_START, PACMAN_START, NOOP) == "stop"
    assert classify_move(PACMAN_START, PACMAN_START, PACMAN_START, NOOP) == "still"
    assert classify_move(PACMAN_START, PACMAN_START, before, came) == "start"
    assert classify_move(before, PACMAN_START, (0, 0), NOOP) == "other"  # no single step gets there


def test_first_misses_count_the_move_where_a_rollout_left_pacman(frame):
    game = envs.PacmanEnv()
    frames = [game.reset(seed=0)[0]]
    keys = [LEFT, LEFT, RIGHT, RIGHT, NOOP, UP, DOWN, LEFT, RIGHT, RIGHT, UP, UP]  # turns, reversals
    for key in keys:
        frames.append(game.step(key)[0])
    frames = np.stack(frames)
    k = 4  # context frames 0..3, rollout frames 4..12
    context = type("Start", (), {"episode": type("Episode", (), {"frames": frames}), "last": k - 1})
    real = frames[k:][None]
    actions = np.array(keys[k - 1 :])[None]
    valid = np.ones(real.shape[:2], dtype=bool)
    tiles = [envs.parse_frame(f).pacman for f in frames]
    expected = [classify_move(*tiles[i - 2 : i + 1], keys[i - 1]) for i in range(k, len(frames))]

    perfect = first_misses_by_move(Rollouts([context], actions, real.copy(), real, valid))
    assert set(perfect) == set(MOVES)
    assert sum(c["first_misses"] for c in perfect.values()) == 0
    for move in MOVES:  # every step on the real tile is one chance of its real move
        assert perfect[move]["steps"] == expected.count(move)

    lost = real.copy()
    tile_pixels(lost[0, 5], tiles[k + 5])[:] = 0  # the rollout drops Pacman at its sixth step
    counts = first_misses_by_move(Rollouts([context], actions, lost, real, valid))
    missed = expected[5]
    assert counts[missed]["first_misses"] == 1 and counts[missed]["missing"] == 1
    assert sum(c["steps"] for c in counts.values()) == 6  # nothing after the first miss counts
    assert sum(c["first_misses"] for c in counts.values()) == 1


def test_one_step_misses_predict_every_real_step_from_the_real_frames_before_it(monkeypatch):
    game = envs.PacmanEnv()
    frames = [game.reset(seed=0)[0]]
    keys = [LEFT, LEFT, RIGHT, RIGHT, NOOP, UP, DOWN, LEFT, RIGHT, RIGHT, UP, UP]
    for key in keys:
        frames.append(game.step(key)[0])
    frames = np.stack(frames)
    k, window = 4, 32
    start = type("Start", (), {
        "episode": type("Episode", (), {"frames": frames}), "start": 0, "last": k - 1,
        "actions": lambda self, length: torch.as_tensor(np.array([NOOP] * (length - k + 1) + keys[: k - 1])),
    })()  # fmt: skip
    play = fam.FamilyPlay("random", [start], [np.array(keys[k - 1 :])], [frames[k:]], 1.0)
    model = type(
        "Model", (), {"settings": type("Settings", (), {"history_length": k, "action_window": window})}
    )
    tiles = [envs.parse_frame(f).pacman for f in frames]
    expected = [classify_move(*tiles[i - 2 : i + 1], keys[i - 1]) for i in range(k, len(frames))]
    answers = frames[k:].copy()

    def predicted(model, contexts, actions, seeds, sampler):
        for step, (context, key) in enumerate(
            zip(contexts, actions, strict=True)
        ):  # the real frames and keys
            np.testing.assert_array_equal(context.frames, frames[step : step + k])
            assert key == keys[step + k - 1] and context.actions[-1] == keys[step + k - 2]
        return answers

    monkeypatch.setattr(fam, "next_frames", predicted)
    perfect = fam.one_step_misses_by_move(model, play, seed=0)
    for move in MOVES:
        assert perfect[move] == {"steps": expected.count(move), "first_misses": 0, "missing": 0}

    tile_pixels(answers[5], tiles[k + 5])[:] = 0  # Pacman left out of one prediction
    tile_pixels(answers[8], tiles[k + 8])[:] = 0  # and another: every step counts, not only the first
    counts = fam.one_step_misses_by_move(model, play, seed=0)
    assert sum(c["steps"] for c in counts.values()) == len(expected)
    for step in (5, 8):
        assert counts[expected[step]]["first_misses"] >= 1 and counts[expected[step]]["missing"] >= 1
    assert sum(c["first_misses"] for c in counts.values()) == 2


# ---- the command --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "held_out.h5"
    arguments = [
        "--env",
        "Pacman-v0",
        "--episodes",
        "3",
        "--out",
        str(path),
        "--max-steps",
        "40",
        "--seed",
        "500",
    ]
    assert record(arguments) == 0
    return path


@pytest.fixture(scope="module")
def ppo_agent(tmp_path_factory):
    """The directory of an untrained PPO agent saved as python -m worldmodel.dream saves its agents."""
    recipe = Recipe(num_envs=1)
    agent = new_agent(wrap(real_vec_env(1, seed=0), recipe), recipe, seed=0, log_dir=None, device="cpu")
    directory = tmp_path_factory.mktemp("agents") / "dream"
    save_agent(agent, directory, curve=[])
    return directory


def test_quick_evaluation_writes_every_output(tiny_checkpoint, held_out, ppo_agent, tmp_path):
    out = tmp_path / "report"
    arguments = ["--checkpoint", str(tiny_checkpoint), "--data", str(held_out), "--out", str(out)]
    threads = torch.get_num_threads()
    try:
        assert evaluate([*arguments, "--quick", "--threads", "1", "--agent", str(ppo_agent)]) == 0
    finally:
        torch.set_num_threads(threads)  # the command sets it for the process; leave other tests theirs
    expected = [
        "metrics.json",
        "report.md",
        "teacher_forced.png",
        "rollout_psnr.png",
        "control.png",
        "drift.png",
    ]
    expected += ["rollout_0.gif", "rollout_1.gif", "control_humanlike.gif", "control_random.gif", "drift.gif"]
    for name in expected:
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in REQUIRED_KEYS:
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    assert len(metrics["ablations"]) == 11
    # A row per action family, each with the same keys, all measured; the trained agent is one more.
    assert list(metrics["families"]) == [
        "recorded", "explorer", "random", "sticky", "humanlike", "circuit", "agent"
    ]  # fmt: skip
    assert metrics["agent"] == str(ppo_agent)
    for family, row in metrics["families"].items():
        for key in FAMILY_KEYS:
            assert isinstance(row[key], float) and math.isfinite(row[key]), (family, key)
        assert row["replay_matched"] == 1.0  # the real game restored to each start equals the recording
        low, high = row["pacman_tile_agreement_at_16_interval"]
        assert 0 <= low <= row["pacman_tile_agreement_at_16"] <= high <= 1
        # quick: two 16-step starts in each of the three episodes
        assert 0 < row["rollouts_at_16"] <= 6
        assert 0 <= row["rollouts_at_64"] <= row["curve_rollouts"]
        first_misses = row["first_miss_by_move"]  # at most one per rollout, and only where it was on track
        assert set(first_misses) == set(MOVES)
        assert all(0 <= c["missing"] <= c["first_misses"] <= c["steps"] for c in first_misses.values())
    assert (
        metrics["pacman_tile_agreement_at_16"]
        == metrics["families"]["recorded"]["pacman_tile_agreement_at_16"]
    )
    ablation = metrics["action_window_ablation"]
    assert ablation["window"] > ablation["short_window"] and ablation["rollouts"] > 0
    for family in ("humanlike", "random"):
        long_play = metrics["long_play"][family]
        assert long_play["rollouts"] == 2 and long_play["steps"] == 200
        assert 0 <= long_play["single_pacman"] <= 1 and long_play["ghost_frames_compared"] > 0
    report = (out / "report.md").read_text()
    assert f"--data {held_out}" in report
    assert "![control](control.png)" in report
    assert "| humanlike |" in report and "Action window ablation" in report and "## 4. Long play" in report
    assert "| agent |" in report and f"PPO agent in `{ppo_agent}`" in report
    assert "| real move | recorded | explorer |" in report and "| turn, key earlier |" in report


@pytest.mark.parametrize("ends_every_step", [True, False])
def test_long_play_starts_again_where_the_learned_game_ends_its_episode(
    tiny_checkpoint, held_out, monkeypatch, ends_every_step
):
    # Our Pacman has one life: past an end nothing is the game, so long play goes on from another
    # held-out start, and the real game with it, exactly when the learned game's end head fires.
    model = load(tiny_checkpoint)
    threshold = -1.0 if ends_every_step else 2.0
    monkeypatch.setattr(WorldModel, "end_threshold", property(lambda self: threshold))
    episodes = load_held_out(model, held_out, 3)
    contexts = choose_contexts(episodes, model.settings.history_length, 8, np.random.default_rng(0))
    steps = 6
    result = drift(model, contexts[:2], steps, seed=0, progress=False, restarts=contexts)
    if ends_every_step:
        assert result["learned_ends"].tolist() == [steps, steps]
        assert result["real_running"].all()  # the real game is put back at each new start too
    else:
        assert result["learned_ends"].tolist() == [0, 0]
    assert result["pacman_tiles"].shape == result["real_pacman_tiles"].shape == (2, steps)
    # the real game's own frames show one Pacman wherever it runs (its start is no end)
    assert (result["real_pacman_tiles"][:, 0] == 1).all()


def test_onnx_runtime_evaluates_through_onnx_and_a_mismatch_is_one_line(
    tiny_checkpoint, held_out, tmp_path, capsys, monkeypatch
):
    import worldmodel.evaluate.run
    from worldmodel.onnx_runtime import OnnxRuntimeError

    asked = []

    def mismatched(model, threads):
        asked.append(threads)
        raise OnnxRuntimeError(
            "the denoiser run by ONNX Runtime differs from torch by 1; play with runtime='torch'"
        )

    monkeypatch.setattr(worldmodel.evaluate.run, "on_onnx_runtime", mismatched)
    arguments = ["--checkpoint", str(tiny_checkpoint), "--data", str(held_out), "--out", str(tmp_path / "r")]
    assert evaluate([*arguments, "--quick", "--runtime", "onnx"]) == 2
    assert asked == [torch.get_num_threads()]
    assert capsys.readouterr().err.startswith("error: the denoiser run by ONNX Runtime differs")


def test_missing_inputs_fail_with_one_line(tiny_checkpoint, held_out, tmp_path, capsys):
    out = str(tmp_path / "report")
    assert evaluate(["--checkpoint", str(tmp_path / "none"), "--data", str(held_out), "--out", out]) == 2
    assert (
        evaluate(["--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path / "no.h5"), "--out", out]) == 2
    )
    arguments = ["--checkpoint", str(tiny_checkpoint), "--data", str(held_out), "--out", out]
    assert evaluate([*arguments, "--agent", str(tmp_path / "no-agent")]) == 2
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "agent.pt").write_bytes(b"not a checkpoint")
    assert evaluate([*arguments, "--agent", str(damaged)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    assert "checkpoint" in lines[0] and "no such file" in lines[1]
    assert "no-agent" in lines[2] and "python -m worldmodel.dream" in lines[2]
    assert "damaged" in lines[3] and "train it again" in lines[3]
    assert not (tmp_path / "report").exists()  # refused before anything was written


@pytest.mark.parametrize(("env_id", "size"), [("ALE/MsPacman-v5", 64), ("Pacman-v0", 32)])
def test_data_of_another_game_or_frame_size_is_refused(tiny_checkpoint, tmp_path, capsys, env_id, size):
    path = tmp_path / "other.h5"
    with TrajectoryWriter(path, env_id, list(envs.ACTION_MEANINGS), (size, size), 10.0) as writer:
        frames = np.zeros((5, size, size, 3), dtype=np.uint8)
        writer.add_episode(
            frames, np.zeros(4, np.int64), np.zeros(4), np.zeros(4, bool), np.zeros(4, bool), seed=0
        )
    arguments = ["--checkpoint", str(tiny_checkpoint), "--data", str(path), "--out", str(tmp_path / "r")]
    assert evaluate(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "does not fit this checkpoint" in error


def test_delta_psnr_is_the_psnr_gained_by_the_real_keys():
    def rollouts(error: int) -> Rollouts:
        real = np.full((2, 4, 8, 8, 3), 100, dtype=np.uint8)
        valid = np.ones((2, 4), dtype=bool)
        return Rollouts([], np.zeros((2, 4), np.int64), real + np.uint8(error), real, valid)

    # Errors of 1 and 10 grey levels everywhere: 20 * log10(10 / 1) = 20 dB apart.
    assert delta_psnr(rollouts(1), rollouts(10), 4) == pytest.approx(20.0)
    assert delta_psnr(rollouts(3), rollouts(3), 2) == pytest.approx(0.0)
    # Pooled over frames: one perfect frame does not count as 100 dB.
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    generated = frames.copy()
    generated[1] = 10  # one frame off by 10, one exact: mean squared error 50
    assert pooled_psnr(generated, frames) == pytest.approx(10 * np.log10(255**2 / 50))
    assert math.isnan(delta_psnr(rollouts(1), rollouts(10), 5))  # past the rollouts' end


def test_more_episodes_than_the_file_holds_is_refused(tiny_checkpoint, held_out, tmp_path, capsys):
    arguments = ["--checkpoint", str(tiny_checkpoint), "--data", str(held_out), "--out", str(tmp_path / "r")]
    assert evaluate([*arguments, "--episodes", "500", "--quick"]) == 2
    error = capsys.readouterr().err
    assert "--episodes 500" in error and "holds only" in error


def test_the_device_asked_for_is_the_one_the_model_is_loaded_on(
    tiny_checkpoint, held_out, tmp_path, monkeypatch
):
    import worldmodel.evaluate.run

    asked = []

    class Stop(Exception):
        pass

    def load(path, device="cpu"):
        asked.append(str(device))
        raise Stop

    monkeypatch.setattr(worldmodel.evaluate.run.WorldModel, "load", load)
    for device in ("cuda:1", "cpu"):
        with pytest.raises(Stop):
            evaluate(["--checkpoint", str(tiny_checkpoint), "--data", str(held_out),
                      "--out", str(tmp_path / "report"), "--quick", "--device", device])  # fmt: skip
    assert asked == ["cuda:1", "cpu"]
