#!/usr/bin/env bash
# Adds the numbers given in the "numbers" argument (a JSON array), with jq-free bash.
# quern:args {"numbers": [1, 2, 3, 4]}
list="${numbers//[\[\] ]/}"
total=0
IFS=, read -ra items <<< "$list"
for n in "${items[@]}"; do total=$((total + n)); done
echo "{\"sum\": $total, \"count\": ${#items[@]}}"
