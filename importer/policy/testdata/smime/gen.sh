#!/bin/sh
# Writes the S/MIME fixtures of smime_test.go with OpenSSL: a mail with a
# text body, a ZUGFeRD PDF (../zugferd.pdf) and a plain PDF
# (../minimal.pdf), signed clear (multipart/signed) and opaque
# (pkcs7-mime, DER and streamed BER), and encrypted. The throw-away key
# and certificate are not kept.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rechnung@lieferant.example" \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
b64() { base64 -w 76 "$1" | sed 's/$/\r/'; }
{
	printf 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
	printf -- '--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
	printf 'Sehr geehrte Damen und Herren,=0D=0Aanbei die Rechnung.\r\n'
	printf -- '--b1\r\nContent-Type: application/pdf; name="RE-FX-1.pdf"\r\nContent-Disposition: attachment; filename="RE-FX-1.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
	b64 ../zugferd.pdf
	printf -- '--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="Lieferschein.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
	b64 ../minimal.pdf
	printf -- '--b1--\r\n'
} >"$tmp/inner.eml"
openssl smime -sign -in "$tmp/inner.eml" -signer "$tmp/cert.pem" -inkey "$tmp/key.pem" -binary >clear-signed.eml
openssl smime -sign -nodetach -binary -in "$tmp/inner.eml" -signer "$tmp/cert.pem" -inkey "$tmp/key.pem" -outform DER -out opaque-der.p7m
openssl cms -sign -nodetach -binary -stream -in "$tmp/inner.eml" -signer "$tmp/cert.pem" -inkey "$tmp/key.pem" -outform DER -out opaque-ber.p7m
openssl smime -sign -nodetach -binary -in "$tmp/inner.eml" -signer "$tmp/cert.pem" -inkey "$tmp/key.pem" -outform SMIME -out opaque-smime.eml
openssl smime -encrypt -aes256 -binary -in "$tmp/inner.eml" -outform DER -out encrypted.p7m "$tmp/cert.pem"
