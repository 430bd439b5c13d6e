"""The names of the headline metrics the evaluation writes (metrics.json, report.md) and training
logs: each written once here, read by whatever produces, tabulates or plots it. The rest (SSIM, the
autoencoder's PSNR, the per-step marks, the ablation rows) are still spelled out where they are used."""

PSNR_TEACHER_FORCED = "psnr_teacher_forced"  # next frame from real frames, mean of per-frame PSNRs
PSNR_COPY_LAST = "psnr_copy_last"  # the baseline: the last real frame again
TILE_AT_16 = "pacman_tile_agreement_at_16"  # Pacman on the real Pacman's tile after 16 free steps
TILE_AT_16_INTERVAL = "pacman_tile_agreement_at_16_interval"  # its 95% Wilson interval
TILE_AT_64 = "pacman_tile_agreement_at_64"
MISSING_AT_16 = "pacman_missing_at_16"  # no Pacman at all after 16 free steps
GHOST_TILE_AT_16 = "ghost_tile_agreement_at_16"
GHOST_COUNT = "ghost_count_agreement"  # as many ghosts as the real game shows
FIRST_MISSES = "first_miss_by_move"  # where rollouts first lose Pacman, by the real move then
SINGLE_PACMAN = "single_pacman"  # exactly one Pacman in the frame
SINGLE_PACMAN_REAL = "single_pacman_real"  # the same read off the real game's frames: the reference
WALLS = "wall_agreement"  # wall tiles matching the maze
PELLETS_BACK = "pellet_reappearances"  # eaten pellets drawn again
STEP_FPS = "step_fps"  # WorldModelEnv.step frames per second
