"""Play the learned Pacman with the keyboard: the world model is the game, upscaled in a pygame window.
Records what is shown (--record out.gif) and plays a scripted player with no window (--headless)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

import envs
from playui import (
    Screen,
    SessionRecorder,
    display_problem,
    pygame,
    recording_problem,
    usable_screen_size,
)

HEADLESS_STEPS = 200  # --headless without --steps


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=None, help="world-model checkpoint directory "
                        "(default: the shipped checkpoints/pacman-64)")  # fmt: skip
    parser.add_argument(
        "--context", default="real", help="'real' (start from the real game) or a recorded .h5 file"
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=8,
        help="upscaling of the 64x64 frames (nearest neighbour); "
        "a window is drawn smaller where the screen needs it",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="stop after this many steps (default: until Q)"
    )
    parser.add_argument(
        "--headless", action="store_true", help="no window: a scripted player plays (see --policy)"
    )
    parser.add_argument("--record", type=Path, default=None, help="save what is shown to a .gif or .mp4 file")
    parser.add_argument("--policy", choices=("explore", "random"), default="explore", help="headless player")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first episode (and the player)")
    parser.add_argument(
        "--fps", type=float, default=10.0, help="steps per second shown (and of the recording)"
    )
    parser.add_argument("--device", default="cpu", help="torch device of the world model, e.g. cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; 1 (default) stays fast when other programs share the CPU",
    )
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnx"),  # worldmodel.onnx_runtime.RUNTIMES, named here to start fast
        default="torch",
        help="onnx: the denoiser and decoder run in ONNX Runtime (CPU; faster, a second more to start)",
    )
    args = parser.parse_args(argv)
    if args.scale < 1 or args.fps <= 0 or (args.steps is not None and args.steps < 0):
        parser.error("--scale and --fps must be positive and --steps not negative")
    if args.headless and args.steps is None:
        args.steps = HEADLESS_STEPS
    return args


class Session:
    """The learned game being played, its score, and the real game following the same actions."""

    def __init__(self, env, seed: int | None):
        self.env = env
        self.real_game = None  # made when TAB first asks for it
        self.showing_real = False
        self.step_times: deque[float] = deque(maxlen=30)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.frame, _ = self.env.reset(seed=seed)
        self.score, self.steps, self.played, self.ended = 0.0, 0, [], False
        self.real_ended = False  # the real game's own episode may end first; it then shows its last frame
        self.real_frame = self._start_real_game() if self.showing_real else None

    def step(self, action: int) -> None:
        if self.ended:
            self.reset()
            return
        self.frame, reward, terminated, truncated, _ = self.env.step(action)
        self.score += reward
        self.steps += 1
        self.played.append(action)
        self.ended = terminated or truncated
        if self.real_frame is not None and not self.real_ended:
            self.real_frame, _, real_terminated, real_truncated, _ = self.real_game.step(action)
            self.real_ended = real_terminated or real_truncated
        self.step_times.append(time.perf_counter())

    def toggle_real(self) -> None:
        self.showing_real = not self.showing_real
        self.real_frame = self._start_real_game() if self.showing_real else None

    def _start_real_game(self) -> np.ndarray | None:
        """The real game at the learned game's point: the context's start, then every action since."""
        context, settings = self.env.context, self.env.settings
        if context.seed is None:
            return None
        if self.real_game is None:
            self.real_game = envs.make_env(settings.env_id, frame_size=settings.frame_size)
        frame, _ = self.real_game.reset(seed=context.seed)
        self.real_ended = False
        for action in [*context.replay_actions, *self.played]:
            frame, _, terminated, truncated, _ = self.real_game.step(int(action))
            if terminated or truncated:  # the real game ended here: it stays on that frame
                self.real_ended = True
                break
        return frame

    def steps_per_second(self) -> float:
        times = self.step_times
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def panel_lines(self, paused: bool) -> list[str]:
        lines = [
            f"FPS {self.steps_per_second():5.1f}",
            f"step {self.steps}",
            f"score {self.score:.0f}",
            f"sampling steps {self.env.sampler.settings.sampling_steps}",
            f"guidance {self.env.sampler.settings.guidance_scale:.2f}",
        ]
        if paused:
            lines.append("PAUSED")
        if self.ended:
            lines.append("episode over")
        return lines

    def status_line(self) -> list[str]:
        """What a headless recording shows under the game: no keys are read, so no help, and no FPS."""
        return [f"step {self.steps}", f"score {self.score:.0f}", *(["episode over"] if self.ended else [])]


def scripted_player(policy: str, env, seed: int | None):
    if policy == "explore":  # the game's scripted player: Pacman's explorer reads him off the learned frames
        return game_spec_of(env).scripted_player(seed)
    return envs.UniformRandomPlayer(env.action_space.n, seed)


def game_spec_of(env) -> envs.GameSpec:
    return envs.game_spec(env.settings.env_id, env.settings.action_meanings)


def handle_key(key: int, session: Session, state: dict) -> None:
    env = session.env
    if key in (pygame.K_q, pygame.K_ESCAPE):
        state["running"] = False
    elif key == pygame.K_r:
        session.reset()
    elif key == pygame.K_p:
        state["paused"] = not state["paused"]
    elif key in (pygame.K_n, pygame.K_SPACE):
        state["step_once"] = True
    elif key in (pygame.K_LEFTBRACKET, pygame.K_RIGHTBRACKET):
        steps = env.sampler.settings.sampling_steps + (1 if key == pygame.K_RIGHTBRACKET else -1)
        env.sampler = env.sampler.replace(sampling_steps=min(max(steps, 1), 50))
    elif key in (pygame.K_MINUS, pygame.K_EQUALS):
        guidance = env.sampler.settings.guidance_scale + (0.25 if key == pygame.K_EQUALS else -0.25)
        env.sampler = env.sampler.replace(guidance_scale=max(guidance, 0.0))
    elif key == pygame.K_TAB:
        session.toggle_real()
        state["resized"] = True


def play(args: argparse.Namespace, env) -> None:
    session, game = Session(env, args.seed), game_spec_of(env)
    if not args.headless:
        pygame.display.init()
    screen = Screen(
        env.settings.frame_size,
        args.scale,
        reserve_real_slot=bool(args.record and not args.headless),
        fit_within=None if args.headless else usable_screen_size(),
        headless=args.headless,
    )
    recording = SessionRecorder(args.record, args.fps) if args.record else None
    player = scripted_player(args.policy, env, args.seed) if args.headless else None
    window, clock = None, pygame.time.Clock()
    if not args.headless:
        pygame.display.set_caption("Pacman - world model")
        window = pygame.display.set_mode(screen.size(False))
    state = {"running": True, "paused": False, "step_once": False, "resized": False}
    held_keys: list[int] = []  # direction keys in the order pressed: the latest one wins
    stepped, total_steps = True, 0  # the first frame is shown and recorded too
    while state["running"]:
        if window is not None:
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    state["running"] = False
                elif event.type == pygame.KEYDOWN:
                    handle_key(event.key, session, state)
                    if event.key in game.key_actions:
                        held_keys.append(event.key)
                elif event.type == pygame.KEYUP and event.key in held_keys:
                    held_keys.remove(event.key)
        lines = session.status_line() if args.headless else session.panel_lines(state["paused"])
        surface = screen.compose(session.frame, session.real_frame, lines)
        if recording is not None and stepped:
            recording.add(surface)
        if window is not None:
            if state["resized"]:
                window = pygame.display.set_mode(screen.size(session.real_frame is not None))
                state["resized"] = False
            window.blit(surface, (0, 0))
            pygame.display.flip()
            clock.tick(args.fps)
        if args.steps is not None and total_steps >= args.steps:
            break
        stepped = not state["paused"] or state["step_once"]
        if stepped and state["running"]:
            action = player(session.frame) if player else game.action_from_keys(held_keys)
            session.step(action)
            total_steps += 1
        state["step_once"] = False
    print(f"played {total_steps} steps, score {session.score:.0f}, {session.steps_per_second():.1f} steps/s")
    if recording is not None:
        recording.save()
        print(f"recorded {len(recording.frames)} frames to {args.record}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.record is not None and (problem := recording_problem(args.record)):
        print(f"play.py: {problem}", file=sys.stderr)
        return 2
    if not args.headless and (problem := display_problem()):
        command = ["python", "play.py", *argv, "--headless"]
        command += [] if args.steps is not None else ["--steps", str(HEADLESS_STEPS)]
        command += [] if args.record is not None else ["--record", "play.gif"]
        print(f"play.py: {problem}, so no window can open. Play headless instead:\n  {shlex.join(command)}")
        return 2
    from worldmodel.env import WorldModelEnv  # after the checks above: loading torch takes seconds
    from worldmodel.onnx_runtime import OnnxRuntimeError

    try:
        env = WorldModelEnv(
            args.checkpoint,
            context=args.context,
            device=args.device,
            threads=args.threads,
            runtime=args.runtime,
        )
    except (ValueError, OnnxRuntimeError) as error:  # a missing or foreign checkpoint, a context file of
        # another game, or a model ONNX Runtime cannot run as torch does
        print(f"play.py: {error}", file=sys.stderr)
        return 2
    try:
        play(args, env)
    finally:
        env.close()
        pygame.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
