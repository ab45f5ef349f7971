/* test_sigv4.c — Signature V4 against AWS's published vectors: the get-vanilla
 * family of the aws-sig-v4-test-suite and the S3 examples of the S3 SigV4
 * documentation (GET Object with Range, ListObjects). */
#include "weights/sigv4.h"
#include "t.h"

#define SUITE_AK "AKIDEXAMPLE"
#define SUITE_SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define S3_AK "AKIAIOSFODNN7EXAMPLE"
#define S3_SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static const sigv4_header vanilla_hdrs[] = {
	{"Host", "example.amazonaws.com"},
	{"X-Amz-Date", "20150830T123600Z"},
};

static sigv4_req vanilla(const char *query)
{
	sigv4_req r = {.method = "GET", .path = "/", .query = query, .headers = vanilla_hdrs, .n_headers = 2, .payload_sha256 = SIGV4_EMPTY_SHA256, .access_key = SUITE_AK, .secret_key = SUITE_SK, .region = "us-east-1", .service = "service", .amz_date = "20150830T123600Z"};
	return r;
}

static void test_get_vanilla(void)
{
	sigv4_req r = vanilla(NULL);
	buf b;
	buf_init(&b, 0);
	T_EQ_INT(sigv4_canonical_request(&r, &b), 0);
	T_EQ_STR(buf_rptr(&b), "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
			       "host;x-amz-date\n" SIGV4_EMPTY_SHA256);
	buf_reset(&b);
	T_EQ_INT(sigv4_string_to_sign(&r, &b), 0);
	T_EQ_STR(buf_rptr(&b), "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
			       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
	buf_reset(&b);
	char sig[65];
	T_EQ_INT(sigv4_sign(&r, sig, &b), 0);
	T_EQ_STR(sig, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	T_EQ_STR(buf_rptr(&b), "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
			       "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	buf_free(&b);
}

static void test_get_vanilla_query_order(void)
{
	/* get-vanilla-query-order-key-case: parameters sorted by name. */
	sigv4_req r = vanilla("Param2=value2&Param1=value1");
	buf b;
	buf_init(&b, 0);
	T_EQ_INT(sigv4_canonical_request(&r, &b), 0);
	T_EQ_STR(buf_rptr(&b), "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
			       "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" SIGV4_EMPTY_SHA256);
	char sig[65];
	T_EQ_INT(sigv4_sign(&r, sig, NULL), 0);
	T_EQ_STR(sig, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
	buf_free(&b);
}

static void test_get_vanilla_empty_query_key(void)
{
	/* get-vanilla-empty-query-key: "Param1=value1". */
	sigv4_req r = vanilla("Param1=value1");
	char sig[65];
	T_EQ_INT(sigv4_sign(&r, sig, NULL), 0);
	T_EQ_STR(sig, "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb");
}

static void test_s3_get_object_range(void)
{
	const sigv4_header h[] = {
		{"Host", "examplebucket.s3.amazonaws.com"},
		{"Range", "bytes=0-9"},
		{"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
		{"x-amz-date", "20130524T000000Z"},
	};
	sigv4_req r = {.method = "GET", .path = "/test.txt", .headers = h, .n_headers = 4, .payload_sha256 = SIGV4_EMPTY_SHA256, .access_key = S3_AK, .secret_key = S3_SK, .region = "us-east-1", .service = "s3", .amz_date = "20130524T000000Z"};
	buf b;
	buf_init(&b, 0);
	T_EQ_INT(sigv4_canonical_request(&r, &b), 0);
	T_EQ_STR(buf_rptr(&b), "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
			       "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\nx-amz-date:20130524T000000Z\n\n"
			       "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
	buf_reset(&b);
	T_EQ_INT(sigv4_string_to_sign(&r, &b), 0);
	T_EQ_STR(buf_rptr(&b), "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
			       "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	char sig[65];
	T_EQ_INT(sigv4_sign(&r, sig, NULL), 0);
	T_EQ_STR(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	buf_free(&b);
}

static void test_s3_list_objects(void)
{
	const sigv4_header h[] = {
		{"Host", "examplebucket.s3.amazonaws.com"},
		{"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
		{"x-amz-date", "20130524T000000Z"},
	};
	sigv4_req r = {.method = "GET", .path = "/", .query = "max-keys=2&prefix=J", .headers = h, .n_headers = 3, .payload_sha256 = SIGV4_EMPTY_SHA256, .access_key = S3_AK, .secret_key = S3_SK, .region = "us-east-1", .service = "s3", .amz_date = "20130524T000000Z"};
	char sig[65];
	T_EQ_INT(sigv4_sign(&r, sig, NULL), 0);
	T_EQ_STR(sig, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void test_uri_encode(void)
{
	buf b;
	buf_init(&b, 0);
	T_EQ_INT(sigv4_uri_encode(&b, "a b/c~d+e=é", 1), 0);
	T_EQ_STR(buf_rptr(&b), "a%20b/c~d%2Be%3D%C3%A9");
	buf_reset(&b);
	T_EQ_INT(sigv4_uri_encode(&b, "x/y", 0), 0);
	T_EQ_STR(buf_rptr(&b), "x%2Fy");
	buf_free(&b);
	char d[17];
	sigv4_amz_date(1440938160, d);
	T_EQ_STR(d, "20150830T123600Z");
}

static void test_bad_requests(void)
{
	sigv4_req r = vanilla(NULL);
	r.amz_date = "2015";
	char sig[65];
	T_EQ_INT(sigv4_sign(&r, sig, NULL), -1);
	r = vanilla(NULL);
	r.n_headers = SIGV4_MAX_HEADERS + 1;
	T_EQ_INT(sigv4_sign(&r, sig, NULL), -1);
}

int main(void)
{
	T_RUN(test_get_vanilla);
	T_RUN(test_get_vanilla_query_order);
	T_RUN(test_get_vanilla_empty_query_key);
	T_RUN(test_s3_get_object_range);
	T_RUN(test_s3_list_objects);
	T_RUN(test_uri_encode);
	T_RUN(test_bad_requests);
	return T_END();
}
