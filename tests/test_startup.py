"""What starting a part of the project costs a user: no audio and nothing on stderr from the
learned game, and neither torch nor diffusers where a command does not need them."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def run_python(code: str, **environment: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SDL_")}
    env.update(OMP_NUM_THREADS="1", **environment)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_learned_game_and_its_checker_print_nothing_on_stderr(tiny_checkpoint):
    # SDL_AUDIODRIVER is left unset, as a user has it: only the display may be initialised.
    code = f"""
import gymnasium, pygame, worldmodel
from gymnasium.utils.env_checker import check_env
env = gymnasium.make("WorldModel-v0", checkpoint={str(tiny_checkpoint)!r})
check_env(env.unwrapped)  # also opens the "human" window, under the dummy video driver
env.close()
print("audio initialised:", pygame.mixer.get_init() is not None)
"""
    result = run_python(code, SDL_VIDEODRIVER="dummy")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "audio initialised: False" in result.stdout


def test_the_real_games_and_the_recorder_import_neither_torch_nor_diffusers():
    code = """
import json, sys
import envs, recorder, recorder.__main__, recorder.export_minari
game = envs.make_env("Pacman-v0")
game.reset(seed=0)
print(json.dumps(sorted(name for name in ("torch", "diffusers", "accelerate") if name in sys.modules)))
"""
    result = run_python(code, SDL_VIDEODRIVER="dummy")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
