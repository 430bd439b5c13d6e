"""WorldModelEnv and WorldModelVectorEnv: the Gymnasium contract (make, make_vec, spec, standard
wrappers), reproducibility, autoreset and the errors a user can cause (bad actions, missing or
foreign checkpoints, context files of another game)."""

import warnings

import gymnasium
import numpy as np
import pytest
import stable_baselines3.common.env_checker
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers import (
    FrameStackObservation,
    GrayscaleObservation,
    RecordEpisodeStatistics,
    RecordVideo,
    ResizeObservation,
)

import envs
import recorder
import worldmodel
import worldmodel.env
from worldmodel import WorldModelEnv, WorldModelVectorEnv
from worldmodel.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return worldmodel.env.load_world_model(tiny_checkpoint, "cpu")


def record_context_file(path, env_id="Pacman-v0", frame_size=64, steps=6):
    """A trajectory file of one real Pacman episode, labelled as ``env_id`` at ``frame_size``."""
    game = envs.make_env("Pacman-v0", frame_size=frame_size)
    frame, _ = game.reset(seed=7)
    frames, actions = [frame], []
    for step in range(steps):
        frame, *_ = game.step(1 + step % 4)
        frames.append(frame)
        actions.append(1 + step % 4)
    writer = recorder.TrajectoryWriter(path, env_id, list(envs.ACTION_MEANINGS), (frame_size, frame_size))
    zeros = np.zeros(steps)
    writer.add_episode(np.stack(frames), actions, zeros, zeros.astype(bool), zeros.astype(bool), seed=7)
    writer.close()
    return np.stack(frames)


def play(env, actions, seed):
    frames, rewards, flags = [env.reset(seed=seed)[0]], [], []
    for action in actions:
        frame, reward, terminated, truncated, _ = env.step(action)
        frames.append(frame)
        rewards.append(reward)
        flags.append((terminated, truncated))
    return np.stack(frames), rewards, flags


def test_passes_the_gymnasium_and_stable_baselines3_checkers(model, tiny_checkpoint):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Made through the registry, so the checker can also try the other render mode.
        env = gymnasium.make("WorldModel-v0", checkpoint=tiny_checkpoint, render_mode="rgb_array")
        check_env(env.unwrapped, skip_render_check=False)
        stable_baselines3.common.env_checker.check_env(WorldModelEnv(model), warn=True)


def test_registered_as_worldmodel_v0(tiny_checkpoint):
    env = gymnasium.make("WorldModel-v0", checkpoint=tiny_checkpoint, max_episode_steps=2)
    frame, _ = env.reset(seed=0)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    env.step(0)
    assert env.step(0)[3] is True  # truncated after max_episode_steps
    # One step limit, gymnasium's TimeLimit, as for Pacman-v0: the env keeps none of its own.
    default = gymnasium.make("WorldModel-v0", checkpoint=tiny_checkpoint, sampling_steps=1)
    assert default.spec.max_episode_steps == 1000 and default.unwrapped.max_episode_steps is None
    # The spec carries the keywords, so gymnasium.make(spec) makes the same env again.
    assert default.spec.kwargs == {"checkpoint": tiny_checkpoint, "sampling_steps": 1}
    assert gymnasium.make(default.spec).unwrapped.sampling_steps == 1


def test_make_vec_returns_the_batched_env(tiny_checkpoint):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # make_vec warns about a missing or malformed autoreset mode
        vector_env = gymnasium.make_vec("WorldModel-v0", num_envs=4, checkpoint=tiny_checkpoint)
    assert isinstance(vector_env, WorldModelVectorEnv) and vector_env.num_envs == 4
    assert vector_env.max_episode_steps == 1000  # the registered limit
    assert vector_env.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    single = gymnasium.make("WorldModel-v0", checkpoint=tiny_checkpoint)
    assert vector_env.single_observation_space == single.observation_space
    assert vector_env.single_action_space == single.action_space
    assert vector_env.observation_space == batch_space(single.observation_space, 4)
    assert vector_env.action_space == batch_space(single.action_space, 4)
    observations, info = vector_env.reset(seed=0)
    assert vector_env.observation_space.contains(observations) and isinstance(info, dict)
    np.testing.assert_array_equal(vector_env.reset(seed=0)[0], observations)  # seeded resets repeat
    assert not np.array_equal(vector_env.reset(seed=1)[0], observations)
    observations, rewards, terminated, truncated, info = vector_env.step(vector_env.action_space.sample())
    assert vector_env.observation_space.contains(observations)
    assert rewards.shape == terminated.shape == truncated.shape == (4,)
    assert terminated.dtype == truncated.dtype == np.bool_
    assert vector_env.spec.id == "WorldModel-v0" and vector_env.spec.kwargs["checkpoint"] == tiny_checkpoint
    again = gymnasium.make_vec(vector_env.spec)  # the spec makes the same batched env again
    assert isinstance(again, WorldModelVectorEnv) and again.num_envs == 4
    vector_env.close()


def test_make_vec_plays_the_episodes_of_single_envs(tiny_checkpoint):
    """The batched env against Gymnasium's SyncVectorEnv of single envs: same seeds, same episodes."""
    num_envs, steps = 4, 7
    actions = np.random.default_rng(1).integers(5, size=(steps, num_envs))
    kwargs = {"num_envs": num_envs, "checkpoint": tiny_checkpoint, "max_episode_steps": 3}
    batched = gymnasium.make_vec("WorldModel-v0", **kwargs)
    separate = gymnasium.make_vec("WorldModel-v0", vectorization_mode="sync", **kwargs)
    assert isinstance(separate, gymnasium.vector.SyncVectorEnv)
    frames, expected = batched.reset(seed=20)[0], separate.reset(seed=20)[0]
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 2
    ends = []
    for step_actions in actions:
        frames, rewards, terminated, truncated, _ = batched.step(step_actions)
        expected, expected_rewards, expected_terminated, expected_truncated, _ = separate.step(step_actions)
        assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 2  # batched arithmetic rounds
        np.testing.assert_allclose(rewards, expected_rewards, atol=1e-4)
        np.testing.assert_array_equal(terminated, expected_terminated)
        np.testing.assert_array_equal(truncated, expected_truncated)
        ends.append(bool(truncated.all()))
    # Three steps, the autoreset step, three steps: both vector envs ended and restarted every copy.
    assert ends == [False, False, True, False, False, False, True]


def test_standard_wrappers_work_on_the_learned_game(tiny_checkpoint):
    env = gymnasium.make("WorldModel-v0", checkpoint=tiny_checkpoint, max_episode_steps=3)
    env = RecordEpisodeStatistics(FrameStackObservation(GrayscaleObservation(env), stack_size=4))
    observation, _ = env.reset(seed=0)
    assert observation.shape == (4, 64, 64) and env.observation_space.contains(observation)
    total = 0.0
    for _ in range(3):
        observation, reward, terminated, truncated, info = env.step(2)
        total += reward
    assert env.observation_space.contains(observation) and truncated
    assert info["episode"]["l"] == 3 and info["episode"]["r"] == pytest.approx(total)
    vector_env = gymnasium.wrappers.vector.RecordEpisodeStatistics(
        gymnasium.make_vec("WorldModel-v0", num_envs=2, checkpoint=tiny_checkpoint, max_episode_steps=2)
    )
    vector_env.reset(seed=0)
    vector_env.step([1, 2])
    *_, info = vector_env.step([1, 2])
    assert info["_episode"].all() and (info["episode"]["l"] == 2).all()


def test_resize_wrapper_works_on_the_learned_game(tiny_checkpoint):
    env = ResizeObservation(gymnasium.make("WorldModel-v0", checkpoint=tiny_checkpoint), (32, 32))
    observation, _ = env.reset(seed=0)
    assert observation.shape == (32, 32, 3) and env.observation_space.contains(env.step(1)[0])


def test_video_recording_works_on_the_learned_game(tiny_checkpoint, tmp_path):
    env = gymnasium.make(
        "WorldModel-v0", checkpoint=tiny_checkpoint, render_mode="rgb_array", max_episode_steps=3
    )
    env = RecordVideo(
        env, str(tmp_path / "videos"), episode_trigger=lambda episode: True, disable_logger=True
    )
    env.reset(seed=0)
    for _ in range(3):
        env.step(1)
    env.close()
    assert list((tmp_path / "videos").glob("*.mp4"))


def test_step_returns_python_types_and_the_predicted_end(model):
    env = WorldModelEnv(model)
    env.reset(seed=0)
    frame, reward, terminated, truncated, info = env.step(np.int64(2))
    assert env.observation_space.contains(frame)
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert terminated == (info["predicted_end_probability"] > 0.5)
    assert info["step"] == 1


def test_same_seed_same_trajectory_and_other_seeds_differ(model):
    actions = [1, 2, 2, 4, 0, 3]
    first, rewards, flags = play(WorldModelEnv(model), actions, seed=3)
    again, rewards_again, flags_again = play(WorldModelEnv(model), actions, seed=3)
    other, _, _ = play(WorldModelEnv(model), actions, seed=4)
    np.testing.assert_array_equal(first, again)
    assert rewards == rewards_again and flags == flags_again
    assert not np.array_equal(first[1:], other[1:])


def test_reset_starts_from_the_real_game(model):
    env = WorldModelEnv(model)
    frame, _ = env.reset(seed=5)
    game = envs.make_env("Pacman-v0")
    real, _ = game.reset(seed=env.context.seed)
    for action in env.context.replay_actions:
        real, *_ = game.step(action)
    np.testing.assert_array_equal(frame, real)
    assert env.context.actions[0] == 0 and len(env.context.frames) == model.settings.history_length


def test_the_env_hands_its_sampler_to_every_step_and_takes_a_new_one_between_steps(model):
    actions = [1, 2, 2, 4]
    default, *_ = play(WorldModelEnv(model), actions, seed=3)
    dpm = WorldModelEnv(model, scheduler="dpm", sampling_steps=3, timestep_shift=2.0)
    assert dpm.sampler.settings == model.settings.sampler.replace(
        scheduler="dpm", sampling_steps=3, timestep_shift=2.0
    )
    other, *_ = play(dpm, actions, seed=3)
    assert not np.array_equal(default[1:], other[1:])
    env = WorldModelEnv(model, sampler=dpm.sampler)  # a sampler handed from one env to another
    again, *_ = play(env, actions, seed=3)
    np.testing.assert_array_equal(again, other)
    env.guidance_scale = 1.0  # play.py's keys: the settings read and set on the env replace its sampler
    assert env.sampler.settings.guidance_scale == 1.0 and env.sampler.settings.scheduler == "dpm"
    assert model.settings.sampler.guidance_scale != 1.0  # the checkpoint's defaults are untouched


@pytest.mark.parametrize(
    "make",
    [lambda m: WorldModelEnv(m, guidence_scale=2), lambda m: WorldModelVectorEnv(2, m, guidence_scale=2)],
)
def test_an_unknown_keyword_is_named_with_the_known_ones(model, make):
    with pytest.raises(TypeError, match=r"unknown keywords \['guidence_scale'\].*'guidance_scale'"):
        make(model)


@pytest.mark.parametrize("action", [5, -1, 1.0, "UP", True, np.array([1, 2])])
def test_invalid_action_is_refused_with_the_valid_range(model, action):
    env = WorldModelEnv(model)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action.*(0 to 4|\[0, 5\))"):
        env.step(action)


def test_batched_env_reproduces_single_envs_with_autoreset(model):
    num_envs, steps = 3, 7
    actions = np.random.default_rng(0).integers(5, size=(steps, num_envs))
    batched = WorldModelVectorEnv(num_envs, model, max_episode_steps=3)
    batch_frames = [batched.reset(seed=20)[0]]
    batch_results = []
    for step_actions in actions:
        frames, rewards, terminated, truncated, _ = batched.step(step_actions)
        batch_frames.append(frames)
        batch_results.append((rewards, terminated, truncated))
    for i in range(num_envs):
        single = WorldModelEnv(model, max_episode_steps=3)
        frames, ended = [single.reset(seed=20 + i)[0]], False
        for step, step_actions in enumerate(actions):
            rewards, terminated, truncated = batch_results[step]
            if ended:  # next-step autoreset: the copy starts a new episode and ignores the action
                frame, ended = single.reset()[0], False
                assert (rewards[i], terminated[i], truncated[i]) == (0.0, False, False)
            else:
                frame, reward, single_terminated, single_truncated, _ = single.step(step_actions[i])
                ended = single_terminated or single_truncated
                assert reward == pytest.approx(rewards[i], abs=1e-4)
                assert (single_terminated, single_truncated) == (terminated[i], truncated[i])
            frames.append(frame)
        difference = np.abs(np.stack(frames).astype(int) - np.stack(batch_frames)[:, i].astype(int))
        assert difference.max() <= 2  # batched arithmetic may round a pixel differently


def test_autoreset_returns_the_next_episode_start(model):
    batched = WorldModelVectorEnv(2, model, max_episode_steps=2)
    assert batched.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    batched.reset(seed=0)
    batched.step([1, 1])
    _, _, _, truncated, _ = batched.step([1, 1])
    assert truncated.all()
    frames, rewards, terminated, truncated, info = batched.step([1, 1])
    assert not terminated.any() and not truncated.any() and (rewards == 0).all()
    assert (info["step"] == 0).all() and not info["_predicted_end_probability"].any()
    for i in range(2):
        np.testing.assert_array_equal(frames[i], batched.contexts[i].frames[-1])
    with pytest.raises(ValueError, match="out of range"):
        batched.step([0, 9])


def test_recorded_context_file(model, tmp_path):
    recorded = record_context_file(tmp_path / "pacman.h5")
    env = WorldModelEnv(model, context=tmp_path / "pacman.h5")
    frame, _ = env.reset(seed=1)
    k = model.settings.history_length
    starts = [
        s for s in range(len(recorded) - k + 1) if np.array_equal(recorded[s : s + k], env.context.frames)
    ]
    assert starts and np.array_equal(frame, recorded[starts[0] + k - 1])
    env.step(0)


@pytest.mark.parametrize(
    "env_id, frame_size, named",
    [("ALE/MsPacman-v5", 64, ["ALE/MsPacman-v5", "Pacman-v0"]), ("Pacman-v0", 32, ["(32, 32)", "(64, 64)"])],
)
def test_context_file_of_another_game_or_size_is_refused(model, tmp_path, env_id, frame_size, named):
    path = tmp_path / "other.h5"
    record_context_file(path, env_id=env_id, frame_size=frame_size)
    with pytest.raises(ValueError) as error:
        WorldModelEnv(model, context=path)
    assert all(name in str(error.value) for name in named)


def test_missing_or_foreign_checkpoint_is_refused(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="not found"):
        WorldModelEnv(tmp_path / "nowhere")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a world-model checkpoint"):
        WorldModelEnv(tmp_path / "foreign")
    monkeypatch.setattr(worldmodel.env, "DEFAULT_CHECKPOINT", tmp_path / "checkpoints" / "pacman-64")
    with pytest.raises(CheckpointError, match="train.py"):
        WorldModelEnv()


@pytest.mark.parametrize("source", ["real", "recorded"])
def test_reset_info_brings_the_real_game_to_the_learned_games_start(model, tmp_path, source):
    context = "real" if source == "real" else tmp_path / "context.h5"
    if source == "recorded":
        record_context_file(context, steps=12)
    env = WorldModelEnv(model, context=context)
    for seed in range(3):
        first_frame, info = env.reset(seed=seed)
        game = gymnasium.make("Pacman-v0")
        frame, _ = game.reset(seed=info["real_game_seed"])
        for action in info["real_game_actions"]:
            frame, *_ = game.step(int(action))
        np.testing.assert_array_equal(frame, first_frame)
        # The model reads the keys that led there, the last of them producing the first frame.
        assert env.context.actions[-1] == (
            info["real_game_actions"][-1] if len(info["real_game_actions"]) else 0
        )
    env.close()


def test_the_batched_env_says_how_to_reach_each_copys_start_in_the_real_game(model):
    batched = WorldModelVectorEnv(3, model)
    observations, info = batched.reset(seed=4)
    assert info["_real_game_seed"].all()
    for index in range(3):
        game = gymnasium.make("Pacman-v0")
        frame, _ = game.reset(seed=info["real_game_seed"][index])
        for action in info["real_game_actions"][index]:
            frame, *_ = game.step(int(action))
        np.testing.assert_array_equal(frame, observations[index])
    batched.close()


def test_threads_reach_torch(model):
    before = torch.get_num_threads()
    try:
        WorldModelEnv(model, threads=2)
        assert torch.get_num_threads() == 2
        WorldModelVectorEnv(2, model)  # the default: one thread, fast on a shared CPU
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="threads must be at least 1"):
            WorldModelEnv(model, threads=0)
    finally:
        torch.set_num_threads(before)


def test_onnx_runtime_plays_the_torch_game(model):
    # The same seeds and keys give the same frames (a pixel may round differently) and rewards; the
    # batched env plays on it too.
    actions = [1, 2, 2, 4, 0, 3]
    torch_frames, torch_rewards, torch_flags = play(WorldModelEnv(model), actions, seed=3)
    onnx_frames, onnx_rewards, onnx_flags = play(WorldModelEnv(model, runtime="onnx"), actions, seed=3)
    difference = np.abs(torch_frames.astype(int) - onnx_frames.astype(int))
    assert difference.max() <= 2 and (difference > 0).mean() < 0.01
    assert onnx_rewards == pytest.approx(torch_rewards, abs=1e-4) and onnx_flags == torch_flags
    batched = WorldModelVectorEnv(2, model, runtime="onnx")
    observations, _ = batched.reset(seed=3)
    observations, *_ = batched.step(np.array([1, 2]))
    assert observations.shape == (2, 64, 64, 3)
    assert np.abs(observations[0].astype(int) - torch_frames[1].astype(int)).max() <= 2


def test_onnx_runtime_that_disagrees_with_torch_is_refused(model, monkeypatch):
    from worldmodel.onnx_runtime import OnnxPass, OnnxRuntimeError

    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        WorldModelEnv(model, runtime="tensorrt")
    monkeypatch.setattr(OnnxPass, "forward", lambda self, *inputs: torch.zeros_like(inputs[0]) + 1.0)
    with pytest.raises(OnnxRuntimeError, match="differs from torch.*runtime='torch'"):
        WorldModelEnv(model, runtime="onnx")


def test_latent_observations_are_the_latents_the_frames_are_drawn_from(model):
    actions = np.random.default_rng(1).integers(5, size=6)
    frames, rewards, flags = play(WorldModelEnv(model, max_episode_steps=4), actions, seed=3)
    reader = WorldModelEnv(model, max_episode_steps=4, observation="latents", render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Latents have no bounds; gymnasium's checker only warns that an infinite one is unusual.
        warnings.filterwarnings("ignore", message=".*Box observation space (min|max)imum value is")
        made = gymnasium.make(
            "WorldModel-v0", checkpoint=model, observation="latents", render_mode="rgb_array"
        )
        check_env(made.unwrapped, skip_render_check=False)
    latents, latent_rewards, latent_flags = play(reader, actions, seed=3)
    assert latents.dtype == np.float32 and latents.shape[1:] == reader.observation_space.shape
    assert (latent_rewards, latent_flags) == (rewards, flags)  # the same game, whatever is observed
    drawn = model.decode(torch.from_numpy(latents[1:])).numpy()  # step 0 is the real start frame
    assert np.abs(drawn.astype(int) - frames[1:].astype(int)).max() <= 2
    assert np.abs(reader.render().astype(int) - drawn[-1].astype(int)).max() <= 2  # decoded when asked


def test_the_batched_env_hands_latents_and_renders_their_frames(model):
    actions = np.random.default_rng(2).integers(5, size=(5, 3))
    frames_env = WorldModelVectorEnv(3, model, max_episode_steps=3)
    latent_env = WorldModelVectorEnv(
        3, model, max_episode_steps=3, observation="latents", render_mode="rgb_array"
    )
    s = model.settings
    assert latent_env.observation_space.shape == (3, s.latent_channels, s.latent_size, s.latent_size)
    frames_env.reset(seed=5)
    latents, _ = latent_env.reset(seed=5)
    assert latent_env.observation_space.contains(latents)
    for step_actions in actions:  # through an autoreset too
        frames, rewards, terminated, truncated, _ = frames_env.step(step_actions)
        latents, latent_rewards, *flags = latent_env.step(step_actions)
        np.testing.assert_allclose(latent_rewards, rewards, atol=1e-4)
        assert np.array_equal(flags[0], terminated) and np.array_equal(flags[1], truncated)
        rendered = np.stack(latent_env.render())
        assert np.abs(rendered.astype(int) - frames.astype(int)).max() <= 2


def test_an_unknown_observation_is_refused_with_the_choices(model):
    with pytest.raises(ValueError, match="observation must be one of.*frames.*latents"):
        WorldModelEnv(model, observation="pixels")
