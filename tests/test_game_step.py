"""The one step of the learned game: what the envs, the rollouts, teacher forcing and the training
samples all advance through gives the same frames whichever of them asks."""

import numpy as np
import pytest
import torch

import envs
from recorder import RESET_ACTION
from worldmodel.contexts import Context, ContextPool, RealGameContext
from worldmodel.env import WorldModelEnv, load_world_model
from worldmodel.evaluate.fidelity import next_frames
from worldmodel.game_step import LatentGames, rollout


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_world_model(tiny_checkpoint, "cpu")


@pytest.fixture(scope="module")
def contexts(model):
    source = RealGameContext(model.settings)
    rng = np.random.default_rng(0)
    try:
        return [source.draw(rng) for _ in range(3)]
    finally:
        source.close()


def test_teacher_forcing_a_rollout_and_a_game_step_give_the_same_next_frame(model, contexts):
    actions = torch.tensor([1, 2, 4])
    seeds = [11, 12, 13]
    games = LatentGames(model, len(contexts))
    games.start(range(len(contexts)), contexts, seeds)
    step = games.step(actions)
    assert step.frames.shape == (3, 64, 64, 3) and step.reward.shape == step.end_probability.shape == (3,)
    forced = next_frames(model, contexts, actions.numpy(), seeds)
    generated = rollout(model, contexts, actions[:, None], seeds)  # (B, 1, C, h, w)
    np.testing.assert_array_equal(forced, step.frames)
    np.testing.assert_array_equal(model.decode(generated[:, 0]).numpy(), step.frames)


def test_a_game_does_not_depend_on_the_games_stepped_beside_it(model, contexts):
    together = LatentGames(model, 3)
    together.start(range(3), contexts, [5, 6, 7])
    alone = LatentGames(model, 1)
    alone.start([0], contexts[1:2], [6])
    for action in (1, 3, 0):
        both = together.step(torch.tensor([action] * 3))
        single = alone.step(torch.tensor([action]))
        # equal up to float rounding, which a different batch size may change
        torch.testing.assert_close(both.latents[1], single.latents[0], atol=1e-5, rtol=1e-5)


def test_frames_or_latents_start_the_same_game(model, contexts):
    context = contexts[0]
    encoded = Context(
        context.frames, context.actions, None, None, latents=model.encode(torch.from_numpy(context.frames))
    )
    frames = []
    for start in (context, encoded):
        games = LatentGames(model, 1)
        games.start([0], [start], [3])
        frames.append(games.step(torch.tensor([2])).frames)
    np.testing.assert_array_equal(*frames)


def test_a_limited_window_shows_older_keys_as_no_key(model, contexts):
    window = model.settings.action_window
    limit = model.settings.history_length + 1
    tapped = Context(contexts[0].frames, np.full(window - 1, envs.ACTION_MEANINGS.index("UP")), None, None)
    released = Context(tapped.frames, tapped.actions.copy(), None, None)
    released.actions[: window - limit] = RESET_ACTION
    frames = []
    for start, window_limit in ((tapped, limit), (released, None)):
        games = LatentGames(model, 1)
        games.start([0], [start], [3])
        frames.append(games.step(torch.tensor([0]), window_limit=window_limit).frames)
    np.testing.assert_array_equal(*frames)


def test_a_context_pool_starts_games_where_the_real_episodes_it_was_given_went(model):
    pool = ContextPool(model.settings)
    first = pool.draw(np.random.default_rng(0))  # nothing added yet: the real game's start
    assert first.replay_actions is not None and len(first.frames) == model.settings.history_length
    game = envs.make_env("Pacman-v0")
    frame, _ = game.reset(seed=11)
    frames, actions = [frame], []
    for step in range(12):
        frame, *_ = game.step(1 + step % 4)
        frames.append(frame)
        actions.append(1 + step % 4)
    pool.add_episode(np.stack(frames), np.array(actions), seed=11)
    k = model.settings.history_length
    assert len(pool.contexts) == 13 - k + 1 and pool.episodes == 1
    env = WorldModelEnv(model, context=pool)
    observation, info = env.reset(seed=3)
    real, _ = game.reset(seed=info["real_game_seed"])
    for action in info["real_game_actions"]:
        real, *_ = game.step(int(action))
    np.testing.assert_array_equal(observation, real)
    assert info["real_game_seed"] == 11
