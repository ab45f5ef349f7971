# tls.sh — test certificates made by openssl in a scratch folder (sourced).
#
#   tls_certs DIR   makes, all P-256 and valid for a day:
#     ca.pem ca.key            the test CA
#     srv.pem srv.key          a server certificate for localhost and 127.0.0.1, signed by the CA
#     srv2.pem srv2.key        a renewed one (another key, another serial), same names
#     other-ca.pem             an unrelated CA (verification must fail against it)
#     other.pem other.key      a server certificate signed by the other CA
#     client.pem client.key    a client certificate signed by the CA (mutual TLS)
#   tls_serial HOST:PORT [openssl s_client flags]: the serial of the served certificate.

tls_certs() {
	local d=$1
	mkdir -p "$d"
	(
		cd "$d" || exit 1
		printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' >srv.ext
		printf 'extendedKeyUsage=clientAuth\n' >client.ext
		for ca in ca other-ca; do
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
				-subj "/CN=infergate test $ca" -keyout $ca.key -out $ca.pem 2>/dev/null || exit 1
		done
		mk() { # name ca ext cn
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$4" \
				-keyout "$1.key" -out "$1.csr" 2>/dev/null &&
			openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -set_serial "0x$(openssl rand -hex 8)" \
				-days 1 -extfile "$3" -out "$1.pem" 2>/dev/null
		}
		mk srv ca srv.ext localhost && mk srv2 ca srv.ext localhost && mk other other-ca srv.ext localhost &&
			mk client ca client.ext test-client
	) || { echo "openssl could not make the test certificates"; exit 1; }
}

tls_serial() {
	local hp=$1; shift
	echo | timeout 5 openssl s_client -connect "$hp" "$@" 2>/dev/null | openssl x509 -noout -serial 2>/dev/null
}
