"""Plays episodes of a Gymnasium game with a policy and collects them for the writer, in this
process or in worker processes that each run their own copy of the env."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import signal
from collections.abc import Collection, Iterator

import gymnasium as gym
import numpy as np

from recorder.policies import checked_action, make_policy


class RecordingError(ValueError):
    """An env that cannot be recorded: unknown id, or not image observations with discrete actions."""


def make_recording_env(env_id: str, frame_size: int = 64) -> gym.Env:
    """Build `env_id` through `envs.make_env` and check it yields (H, W, 3) uint8 frames and discrete actions."""
    try:
        from envs import make_env
    except ImportError:  # a checkout without the envs adapters records plain Gymnasium envs
        make_env = None
    try:
        env = make_env(env_id, frame_size=frame_size) if make_env else gym.make(env_id)
    except Exception as error:  # gymnasium raises many types for a bad id; all mean "cannot build it"
        raise RecordingError(f"cannot make env {env_id!r}: {error}") from None
    space = env.observation_space
    if not (
        isinstance(space, gym.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[2] == 3
    ):
        env.close()
        raise RecordingError(
            f"env {env_id!r} has observations {space}, not (H, W, 3) uint8 images; "
            "the recorder needs an image env such as Pacman-v0 or ALE/MsPacman-v5"
        )
    if not isinstance(env.action_space, gym.spaces.Discrete):
        env.close()
        raise RecordingError(
            f"env {env_id!r} has actions {env.action_space}; the recorder needs Discrete actions"
        )
    return env


def action_meanings(env: gym.Env) -> list[str]:
    """The env's names for its actions, from the adapter if it has them, else the ALE, else indices."""
    for getter in (
        lambda: env.get_wrapper_attr("action_meanings"),
        lambda: env.unwrapped.get_action_meanings(),
    ):
        try:
            meanings = getter()
        except AttributeError:
            continue
        meanings = meanings() if callable(meanings) else meanings
        if meanings is not None and len(meanings) == env.action_space.n:
            return [str(m) for m in meanings]
    return [str(i) for i in range(env.action_space.n)]


class StopRequest:
    """While active, Ctrl-C (SIGINT) asks the recording to stop instead of raising where it lands.

    A KeyboardInterrupt raised inside a destructor or a weakref callback (h5py and multiprocessing
    run many) is printed and swallowed by Python, and the recording went on; a flag checked between
    steps and while waiting for workers cannot be lost. A second Ctrl-C interrupts at once.
    """

    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __enter__(self) -> StopRequest:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def __call__(self) -> bool:
        return self.requested


def seeds_to_record(recorded: Collection[int], first: int, count: int) -> list[int]:
    """The first `count` seeds from `first` up that are not `recorded` yet: a parallel run commits
    episodes as they finish, so a killed one leaves gaps, and the next run fills them first."""
    recorded, seeds, seed = set(recorded), [], first
    while len(seeds) < count:
        if seed not in recorded:
            seeds.append(seed)
        seed += 1
    return seeds


def run_episode(
    env: gym.Env, policy, seed: int, max_steps: int | None, policy_name: str, stop=lambda: False
) -> dict | None:
    """Play one episode from `env.reset(seed=seed)`; hitting `max_steps` marks the last step truncated.
    Returns None if `stop()` turns true first: an incomplete episode is never recorded."""
    observation, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset(seed)
    num_actions = int(env.action_space.n)
    frames, actions, rewards, terminated, truncated = [observation], [], [], [], []
    while True:
        if stop():
            return None
        action = checked_action(policy(observation), num_actions, policy_name)
        observation, reward, is_terminated, is_truncated, _ = env.step(action)
        frames.append(observation)
        actions.append(action)
        rewards.append(float(reward))
        policy_stop = getattr(policy, "stop_requested", False)
        is_truncated = bool(is_truncated) or len(actions) == max_steps or (policy_stop and not is_terminated)
        terminated.append(bool(is_terminated))
        truncated.append(is_truncated)
        if is_terminated or is_truncated:
            break
    return {
        "frames": np.stack(frames),
        "actions": np.array(actions, np.int64),
        "rewards": np.array(rewards, np.float32),
        "terminated": np.array(terminated, np.bool_),
        "truncated": np.array(truncated, np.bool_),
        "seed": int(seed),
    }


def _worker(env_id, frame_size, policy_name, max_steps, seeds, results, parent_pid) -> None:
    # The main process handles Ctrl-C and stops the workers (SIGINT also arrives blocked from it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        env = make_recording_env(env_id, frame_size)
        policy = make_policy(policy_name, env, seed=0, env_id=env_id)
        while os.getppid() == parent_pid:  # an orphaned worker stops instead of recording for nobody
            try:
                seed = seeds.get(timeout=1.0)
            except queue.Empty:
                continue
            if seed is None:
                break
            results.put(run_episode(env, policy, seed, max_steps, policy_name))
        if os.getppid() != parent_pid:
            results.cancel_join_thread()  # nobody will read the queue: do not hang on exit
        env.close()
    except Exception as error:
        results.put(error)


def record_episodes(
    env, policy, env_id, policy_name, seeds, max_steps, workers, frame_size, stop=lambda: False
) -> Iterator[dict]:
    """Yield finished episodes for `seeds`, in completion order, until `stop()` turns true;
    `workers` > 1 plays them in parallel processes."""
    if workers <= 1:
        for seed in seeds:
            episode = run_episode(env, policy, seed, max_steps, policy_name, stop)
            if episode is None:
                return
            yield episode
            if getattr(policy, "stop_requested", False) or stop():
                return
        return
    context = mp.get_context("spawn")  # spawned workers inherit no open HDF5 handle or file lock
    seed_queue, results = context.Queue(), context.Queue()
    pending = iter(seeds)
    # A few seeds ahead per worker, not all of them: a stopped run leaves few gaps, and the queue's
    # feeder thread never holds a backlog that would keep the process from exiting.
    in_flight = 0
    for seed in itertools.islice(pending, 2 * workers):
        seed_queue.put(seed)
        in_flight += 1
    args = (env_id, frame_size, policy_name, max_steps, seed_queue, results, os.getpid())
    processes = [context.Process(target=_worker, args=args, daemon=True) for _ in range(workers)]
    # Started with SIGINT blocked, which they inherit: a Ctrl-C while they import is not theirs to handle.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for process in processes:
            process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        while in_flight and not stop():
            try:
                item = results.get(timeout=0.2)
            except queue.Empty:
                if not any(process.is_alive() for process in processes) and results.empty():
                    raise RecordingError(
                        "every recording worker exited before finishing (killed, or out of memory?); "
                        "the file keeps the episodes committed so far: run again to append the rest"
                    ) from None
                continue
            if isinstance(item, Exception):
                raise item
            in_flight -= 1
            for seed in itertools.islice(pending, 1):
                seed_queue.put(seed)
                in_flight += 1
            yield item
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
        for channel in (seed_queue, results):
            channel.cancel_join_thread()
            channel.close()
