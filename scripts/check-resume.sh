#!/bin/bash
# Kill -9 and Ctrl-C a `maskdm pretrain` run at a random moment after its first checkpoint, re-run the
# same command, and check the final checkpoint equals an uninterrupted run bit for bit.
# Usage: scripts/check-resume.sh DATA [FLAG ...]   (after swift build -c release --product maskdm)
# Extra flags go to every run, e.g. `scripts/check-resume.sh emoji --accumulate 2` (micro-batches);
# with `--fid-every K --fid-samples N` the FID scores (fid.jsonl) are compared too.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; M="$ROOT/.build/release/maskdm"; DATA="${1:?usage: scripts/check-resume.sh IMAGE_FOLDER_OR_DATASET}"
shift; ARGS="--data $DATA --model tiny --size 32 --steps 80 --batch 8 --lr 1e-3 --objective v --checkpoint-every 10 --log-every 1000 $*"
W=$(mktemp -d); cp "$ROOT/scripts/compare_checkpoints.py" $W/cmp.py; cd $W
t0=$(date +%s.%N)
$M pretrain $ARGS --out full > full.log 2>&1
echo "full run: $(echo "$(date +%s.%N) - $t0" | bc) s"
# kill -9 at a random moment after the first checkpoint
$M pretrain $ARGS --out killed > killed1.log 2>&1 &
pid=$!
while [ ! -f killed/checkpoint.safetensors ]; do sleep 0.2; done
delay=$(python3 -c "import random; print(round(random.uniform(0.5, 12), 2))")
sleep $delay; kill -9 $pid; wait $pid; echo "killed -9 after first checkpoint + ${delay}s (exit $?), log lines $(wc -l < killed/log.jsonl), last checkpoint step $(ls killed | grep -o 'checkpoint-[0-9]*' | sort -t- -k2 -n | tail -1)"
$M pretrain $ARGS --out killed > killed2.log 2>&1; echo "resume exit $?: $(grep resuming killed2.log | head -1)"
python3 cmp.py full/checkpoint.safetensors killed/checkpoint.safetensors && echo "KILL9 BIT-IDENTICAL"
# Ctrl-C (SIGINT)
$M pretrain $ARGS --out intr > intr1.log 2>&1 &
pid=$!
while [ ! -f intr/checkpoint.safetensors ]; do sleep 0.2; done
sleep 3; kill -INT $pid; wait $pid; echo "SIGINT exit $? ; $(tail -1 intr1.log)"
$M pretrain $ARGS --out intr > intr2.log 2>&1; echo "resume exit $?: $(grep resuming intr2.log | head -1)"
python3 cmp.py full/checkpoint.safetensors intr/checkpoint.safetensors && echo "SIGINT BIT-IDENTICAL"
cmp <(python3 -c "import json;[print(json.loads(l)['loss']) for l in open('full/log.jsonl')]") <(python3 -c "import json;[print(json.loads(l)['loss']) for l in open('killed/log.jsonl')]") && echo "KILL9 LOG LOSSES IDENTICAL"
scores() { python3 -c "import json,sys;[print(r['step'], repr(r['fid']), repr(r['kid'])) for r in map(json.loads, open(sys.argv[1]))]" $1; }
if [ -f full/fid.jsonl ]; then
  echo "scores of the full run: $(scores full/fid.jsonl | wc -l)"
  cmp <(scores full/fid.jsonl) <(scores killed/fid.jsonl) && echo "KILL9 FID SCORES IDENTICAL"
  cmp <(scores full/fid.jsonl) <(scores intr/fid.jsonl) && echo "SIGINT FID SCORES IDENTICAL"
fi
