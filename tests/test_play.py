"""play.py as a user runs it: headless recording, the no-display message, clear errors for bad
checkpoints, the keys that tune sampling, and the real game shown beside the learned one."""

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

import envs
import play
from playui import PANEL_HEIGHT, PANEL_WIDTH, SCREEN_MARGIN, STATUS_HEIGHT, pygame
from worldmodel.env import WorldModelEnv

REPOSITORY = Path(__file__).resolve().parent.parent


def run_play(args, tmp_path, **environment):
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(OMP_NUM_THREADS="1", **environment)
    env = {key: value for key, value in env.items() if value is not None}
    return subprocess.run(
        [sys.executable, str(REPOSITORY / "play.py"), *map(str, args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_headless_run_records_a_gif_of_every_step(tiny_checkpoint, tmp_path):
    result = run_play(
        ["--checkpoint", tiny_checkpoint, "--headless", "--steps", 5, "--record", "out.gif", "--seed", 0],
        tmp_path,
        SDL_VIDEODRIVER="dummy",
    )
    assert result.returncode == 0, result.stderr
    frames = iio.imread(tmp_path / "out.gif", index=None)
    assert frames.shape[0] == 6  # the first frame and one per step
    # The game over a line of step and score: no panel of key help (no one presses keys) or FPS.
    assert frames.shape[1:3] == (64 * 8 + STATUS_HEIGHT, 64 * 8)


def test_a_headless_recording_shows_the_score_not_the_frame_rate(tiny_checkpoint):
    session = play.Session(WorldModelEnv(tiny_checkpoint), seed=0)
    session.step(2)
    assert session.status_line()[:2] == ["step 1", f"score {session.score:.0f}"]
    assert not any("FPS" in part for part in session.status_line())


def test_no_display_says_so_and_gives_the_headless_command(tiny_checkpoint, tmp_path):
    result = run_play(["--checkpoint", tiny_checkpoint], tmp_path, SDL_VIDEODRIVER=None)
    assert result.returncode == 2
    assert "no display" in result.stdout
    assert f"python play.py --checkpoint {tiny_checkpoint} --headless" in result.stdout


def test_missing_and_foreign_checkpoints_fail_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    for checkpoint in (tmp_path / "missing", foreign):
        assert play.main(["--checkpoint", str(checkpoint), "--headless", "--steps", "1"]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and str(checkpoint) in error and "Traceback" not in error


def test_unsupported_recording_format_is_refused(capsys):
    assert play.main(["--headless", "--record", "out.avi"]) == 2
    assert ".gif or .mp4" in capsys.readouterr().err


def test_mp4_without_imageio_ffmpeg_names_the_video_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if it were not installed
    assert play.main(["--headless", "--record", str(tmp_path / "out.mp4")]) == 2
    error = capsys.readouterr().err
    assert 'pip install -e ".[video]"' in error and "out.mp4" in error and "Traceback" not in error
    assert not (tmp_path / "out.mp4").exists()


def test_window_loop_runs_under_the_dummy_driver(tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert play.main(["--checkpoint", str(tiny_checkpoint), "--steps", "3", "--fps", "1000"]) == 0
    assert "played 3 steps" in capsys.readouterr().out


def test_the_window_with_the_real_game_beside_fits_a_small_screen(tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # its screen is 1024x768, too small for two games at 8x
    env = WorldModelEnv(tiny_checkpoint)
    args = play.parse_args(["--checkpoint", str(tiny_checkpoint), "--steps", "2", "--fps", "1000"])
    real_events = pygame.event.get
    for screen, expected_scale in (("dummy", 5), ((600, 400), 2)):
        if screen != "dummy":  # a set screen size, as play.py would read from a smaller display
            monkeypatch.setattr(play, "usable_screen_size", lambda size=screen: size)
        presses = [[pygame.event.Event(pygame.KEYDOWN, key=pygame.K_TAB)]]
        monkeypatch.setattr(pygame.event, "get", lambda p=presses: p.pop() if p else real_events())
        play.play(args, env)
        width, height = pygame.display.get_surface().get_size()
        limit = (1024 - SCREEN_MARGIN[0], 768 - SCREEN_MARGIN[1]) if screen == "dummy" else screen
        assert width <= limit[0] and height <= limit[1]
        # both games, smaller, and the panel of numbers beside them in full
        assert (width, height) == (2 * 64 * expected_scale + PANEL_WIDTH, PANEL_HEIGHT)
    pygame.quit()


def test_keys_tune_sampling_and_pause(tiny_checkpoint):
    session = play.Session(WorldModelEnv(tiny_checkpoint), seed=0)
    state = {"running": True, "paused": False, "step_once": False, "resized": False}
    steps, guidance = session.env.sampling_steps, session.env.guidance_scale
    for key in (
        pygame.K_RIGHTBRACKET,
        pygame.K_RIGHTBRACKET,
        pygame.K_LEFTBRACKET,
        pygame.K_EQUALS,
        pygame.K_p,
    ):
        play.handle_key(key, session, state)
    assert session.env.sampling_steps == steps + 1
    assert session.env.guidance_scale == pytest.approx(guidance + 0.25)
    assert state["paused"]
    play.handle_key(pygame.K_q, session, state)
    assert not state["running"]


def test_real_game_follows_the_same_actions(tiny_checkpoint, monkeypatch):
    session = play.Session(WorldModelEnv(tiny_checkpoint), seed=1)
    session.toggle_real()
    np.testing.assert_array_equal(session.real_frame, session.frame)  # both start from the context
    actions = [2, 2, 1, 3]
    for action in actions:
        session.step(action)
    game = envs.make_env("Pacman-v0")
    real, _ = game.reset(seed=session.env.context.seed)
    for action in [*session.env.context.replay_actions, *actions]:
        real, *_ = game.step(int(action))
    np.testing.assert_array_equal(session.real_frame, real)


def test_the_real_game_beside_keeps_its_last_frame_once_its_episode_ends(tiny_checkpoint):
    session = play.Session(WorldModelEnv(tiny_checkpoint), seed=1)
    session.toggle_real()
    for _ in range(400):  # standing still, Pacman is caught long before this
        session.step(0)
        if session.real_ended:
            break
    assert session.real_ended
    last = session.real_frame.copy()
    session.step(0)  # the learned game plays on; the real one, ended, is not stepped again
    np.testing.assert_array_equal(session.real_frame, last)
    session.toggle_real()
    session.toggle_real()  # replayed from the start: it ends at the same frame, without an error
    np.testing.assert_array_equal(session.real_frame, last)
