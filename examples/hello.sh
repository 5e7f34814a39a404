#!/usr/bin/env bash
# A first Quern job. Arguments arrive as positional parameters (in the order
# of the JSON object) and as environment variables of the same name.
# The last stdout line, if it is JSON, is the job's result.
# quern:args {"name": "world", "times": 2}
name="${1:-world}"
times="${2:-1}"
for i in $(seq "$times"); do echo "hello, $name ($i)"; done
echo "{\"greeting\": \"hello, $name\", \"times\": $times}"
