#!/usr/bin/env bash
# Fetches the test Kafka broker's and the Kafka Connect + Debezium worker's jars from Maven Central
# (one folder per profile of pom.xml beside this file) into a cache keyed by the pom's hash, and prints
# that cache folder. Needs only Java 17 and Maven; a complete cache is reused without running Maven.
#   FEATUREFLOW_KAFKA_JARS=<folder>  overrides the cache folder (it must hold broker/ and connect/).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/pom.xml"
profiles=(broker connect)
plugin="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

if [ -n "${FEATUREFLOW_KAFKA_JARS:-}" ]; then
  cache="$FEATUREFLOW_KAFKA_JARS"
else
  hash="$(sha256sum "$pom" | cut -c1-16)"
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/featureflow/kafka-$hash"
fi

for profile in "${profiles[@]}"; do
  # The marker is written last, so a folder without it (a run cut short) is fetched again.
  [ -f "$cache/$profile/.complete" ] && continue
  command -v mvn >/dev/null 2>&1 || { echo "fetch-jars.sh: mvn not found; install Maven (apt-get install -y maven) and Java 17" >&2; exit 1; }
  mkdir -p "$cache"
  # Copy into a private folder, then rename: two runs at once never see a half-filled folder.
  tmp="$(mktemp -d "$cache/.$profile.XXXXXX")"
  echo "fetch-jars.sh: fetching the $profile jars with Maven into $cache/$profile" >&2
  # Maven's own output goes to stderr: stdout carries only the cache folder.
  if ! mvn -q -B -Dstyle.color=never -f "$pom" -P"$profile" "$plugin:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    echo "fetch-jars.sh: Maven could not fetch the $profile jars (see above)" >&2
    exit 1
  fi
  touch "$tmp/.complete"
  if ! mv -T "$tmp" "$cache/$profile" 2>/dev/null; then
    # Another run finished first (or a stale incomplete folder is in the way).
    if [ -f "$cache/$profile/.complete" ]; then rm -rf "$tmp"; else rm -rf "$cache/$profile" && mv -T "$tmp" "$cache/$profile"; fi
  fi
done

echo "$cache"
