#!/bin/sh
# Writes the credentials docker-compose.yml mounts as files, once per
# installation: existing files are kept, so running it again rotates
# nothing (MAILGATE_SECRET_KEY seals the stored tokens: losing it loses
# every connection).
#
#   MAILGATE_MS_CLIENT_SECRET=... deploy/secrets.sh [DIR [ROUTE_HOST:PORT...]]
#
# DIR defaults to ./secrets; the routes to the compose cluster's nodes
# nats-1:6222 nats-2:6222 nats-3:6222. Needs openssl.
set -eu
dir=${1:-./secrets}
[ $# -gt 0 ] && shift
[ $# -eq 0 ] && set -- nats-1:6222 nats-2:6222 nats-3:6222

umask 077
mkdir -p "$dir"
chmod 700 "$dir"

# new FILE MODE: writes standard input to FILE unless it exists. The mailgate
# containers run as uid 65532 and read their files through the bind mount,
# so those are mode 444 inside the private directory.
new() {
	if [ -e "$dir/$1" ]; then
		cat >/dev/null
		echo "kept    $dir/$1"
		return
	fi
	cat >"$dir/$1"
	chmod "$2" "$dir/$1"
	echo "created $dir/$1"
}
pw() { openssl rand -hex 24; }

pw | new nats-mailgate-password 444
pw | new nats-dms-password 400
pw | new nats-route-password 400
echo minio-admin | new minio-root-user 400
pw | new minio-root-password 400
# mailgate's own S3 user, made by deploy/minio/init.sh (compose service
# minio-init) with a policy for its bucket only.
echo mailgate-s3 | new mailgate-s3-access-key 444
pw | new mailgate-s3-secret-key 444
openssl rand -base64 32 | new mailgate-secret-key 444
if [ -n "${MAILGATE_MS_CLIENT_SECRET:-}" ]; then
	printf '%s\n' "$MAILGATE_MS_CLIENT_SECRET" | new ms-client-secret 444
elif [ ! -e "$dir/ms-client-secret" ]; then
	echo "missing $dir/ms-client-secret: put your Microsoft app registration's client secret there (mode 444)" >&2
fi

# nats-auth.conf: the variables deploy/nats/nats.conf uses, made from the
# password files above; rewritten each time, so it follows them.
route=$(cat "$dir/nats-route-password")
routes=""
for r in "$@"; do
	routes="$routes${routes:+, }\"nats-route://route:$route@$r\""
done
rm -f "$dir/nats-auth.conf"
{
	echo "# written by deploy/secrets.sh; the variables of deploy/nats/nats.conf"
	echo "MAILGATE_PASSWORD: \"$(cat "$dir/nats-mailgate-password")\""
	echo "DMS_PASSWORD: \"$(cat "$dir/nats-dms-password")\""
	echo "ROUTE_PASSWORD: \"$route\""
	echo "ROUTES: [$routes]"
} | new nats-auth.conf 400
