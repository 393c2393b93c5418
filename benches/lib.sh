# Shared helpers for the benchmark scripts: run a command several times under /usr/bin/time -v
# and print the median wall time and the largest peak RSS.
# usage: measure RUNS LABEL -- CMD [ARGS...]   (stdout of CMD is discarded)
# sets MEASURE_SECS (median wall seconds) and MEASURE_RSS_KB (max peak RSS in KiB)
measure() {
  local runs=$1 label=$2; shift 3
  local times=() rss=0 f
  f=$(mktemp)
  for _ in $(seq "$runs"); do
    /usr/bin/time -v "$@" >/dev/null 2>"$f" || { echo "FAILED: $label" >&2; tail -5 "$f" >&2; }
    time_v_report "$f"
    times+=("$TIME_WALL")
    [ "$TIME_RSS_KB" -gt "$rss" ] && rss=$TIME_RSS_KB
  done
  rm -f "$f"
  MEASURE_SECS=$(median "${times[@]}")
  MEASURE_RSS_KB=$rss
}

# Reads the report /usr/bin/time -v wrote to FILE: sets TIME_WALL (wall seconds, from
# "h:mm:ss" or "m:ss.cc") and TIME_RSS_KB (peak RSS in KiB).
# usage: time_v_report FILE
time_v_report() {
  TIME_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  TIME_RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$1")
}

# Prints the median of its numeric arguments (the lower middle one of an even count).
# usage: median N...
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# Runs CMD RUNS times under /usr/bin/time and keeps the fastest run (2-core machines vary by up to
# ±30 % between runs): its stdout goes to OUT and its stderr to ERR (either may be /dev/null), and
# BEST_TIME is set to "wall_s user_s sys_s peak_rss_kb" (peak RSS: the largest of the runs).
# Returns 1 as soon as a run fails, with that run's stderr in ERR.
# usage: best_of RUNS OUT ERR -- CMD [ARGS...]
best_of() {
  local runs=$1 out=$2 err=$3; shift 4
  local d; d=$(mktemp -d)
  local maxrss=0 best="" w u s m _
  BEST_TIME=""
  for _ in $(seq "$runs"); do
    if ! /usr/bin/time -f "%e %U %S %M" -o "$d/time" "$@" >"$d/out" 2>"$d/err"; then
      cat "$d/err" >"$err"; rm -rf "$d"; return 1
    fi
    read -r w u s m < <(tail -1 "$d/time")
    [ "$m" -gt "$maxrss" ] && maxrss=$m
    if [ -z "$best" ] || awk -v a="$w" -v b="${best%% *}" 'BEGIN { exit !(a < b) }'; then
      best="$w $u $s"; cat "$d/out" >"$out"; cat "$d/err" >"$err"
    fi
  done
  rm -rf "$d"
  BEST_TIME="$best $maxrss"
}

# Puts FILE in the page cache as a file read from disk sits there: writes back and drops its
# cached pages, then reads it once. Pages that have sat in the cache for hours can copy out
# much slower (here `dd bs=2M` of the 1 GB g1 took 0.15 s before and 0.05 s after this), for
# every tool alike; starting each benchmark from the same state removes that difference.
# usage: warm_from_disk FILE
warm_from_disk() {
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
  cat "$1" >/dev/null
}
