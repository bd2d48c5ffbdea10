#!/bin/bash
# The operator's nightly rclone job, unchanged in its logic; source,
# destination and log come from the environment ($DEST is a local path in
# the tests), and retries are kept short.
SRC="${SRC:-/data/important}"
DEST="${DEST:-s3backup:your-backup-bucket/important/$(hostname -s)}"
DATE="${DATE:-$(date +%F)}"
LOG="${LOG:-/var/log/rclone.log}"

rclone sync "$SRC" "$DEST/$DATE" \
  --config=/dev/null \
  --log-file="$LOG" \
  --log-level=INFO \
  --delete-during \
  --transfers=8 \
  --checkers=16 \
  --retries="${RETRIES:-3}"

echo "Backup completed at $(date)" >> "$LOG"
