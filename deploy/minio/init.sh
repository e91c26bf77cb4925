#!/bin/sh
# One-shot (compose service minio-init, image minio/mc): the bucket, a
# policy that allows only what mailgate does in it, and mailgate's own S3
# user with that policy. mailgate never holds MinIO's root credentials.
# Safe to run again: what exists is kept.
#
#   BUCKET=invoices [MINIO_URL=http://minio:9000] [SECRETS=/run/secrets] [MC=mc] init.sh
set -eu
bucket=${BUCKET:?set BUCKET}
url=${MINIO_URL:-http://minio:9000}
secrets=${SECRETS:-/run/secrets}
mc=${MC:-mc}
export MC_CONFIG_DIR="${MC_CONFIG_DIR:-/tmp/mc}"

"$mc" alias set local "$url" "$(cat "$secrets/minio_root_user")" "$(cat "$secrets/minio_root_password")" >/dev/null
"$mc" mb --ignore-existing "local/$bucket"

# Store and read objects (multipart uploads included) in this bucket only;
# no listing of objects, no deletes, no other bucket.
policy="$MC_CONFIG_DIR/mailgate-policy.json"
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Resource": ["arn:aws:s3:::$bucket"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], "Resource": ["arn:aws:s3:::$bucket/*"]}
  ]
}
JSON
"$mc" admin policy create local mailgate "$policy"
user=$(cat "$secrets/mailgate_s3_access_key")
"$mc" admin user add local "$user" "$(cat "$secrets/mailgate_s3_secret_key")"
if ! "$mc" admin user info local "$user" --json | grep -q '"policyName": *"mailgate"'; then
	"$mc" admin policy attach local mailgate --user "$user"
fi
echo "bucket $bucket and S3 user $user (policy mailgate) ready"
