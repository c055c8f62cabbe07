package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", s, err)
	}
	return u
}

func TestParseS3URI(t *testing.T) {
	tests := []struct {
		uri     string
		want    s3Location
		wantErr string
	}{
		{uri: "s3://bucket/path/to/table", want: s3Location{Bucket: "bucket", Prefix: "path/to/table"}},
		{uri: "s3://bucket/path/to/table/", want: s3Location{Bucket: "bucket", Prefix: "path/to/table"}},
		{uri: "s3a://my.bucket-1/t", want: s3Location{Bucket: "my.bucket-1", Prefix: "t"}},
		{uri: "s3://bucket", want: s3Location{Bucket: "bucket", Prefix: ""}},
		{uri: "s3://bucket/", want: s3Location{Bucket: "bucket", Prefix: ""}},
		{uri: "S3://bucket/x", want: s3Location{Bucket: "bucket", Prefix: "x"}},
		{uri: "s3:///path", wantErr: "missing bucket"},
		{uri: "s3://key:secret@bucket/x", wantErr: "not supported"},
		{uri: "s3://bucket:9000/x", wantErr: "cannot have a port"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			got, err := parseS3URI(mustURL(t, tt.uri))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseAzureURI(t *testing.T) {
	tests := []struct {
		uri        string
		envAccount string
		want       azureLocation
		wantErr    string
	}{
		{
			uri:  "abfss://container@account.dfs.core.windows.net/path/to/table",
			want: azureLocation{Account: "account", Container: "container", Prefix: "path/to/table", BlobHost: "account.blob.core.windows.net"},
		},
		{
			uri:  "abfs://container@account.dfs.core.windows.net/t/",
			want: azureLocation{Account: "account", Container: "container", Prefix: "t", BlobHost: "account.blob.core.windows.net"},
		},
		{
			uri:  "abfss://fs@Account.blob.core.windows.net/t",
			want: azureLocation{Account: "account", Container: "fs", Prefix: "t", BlobHost: "account.blob.core.windows.net"},
		},
		{
			// Sovereign cloud suffix.
			uri:  "abfss://c@acct.dfs.core.chinacloudapi.cn/t",
			want: azureLocation{Account: "acct", Container: "c", Prefix: "t", BlobHost: "acct.blob.core.chinacloudapi.cn"},
		},
		{
			// OneLake: workspace is the container, the item path the prefix.
			uri:  "abfss://workspace@onelake.dfs.fabric.microsoft.com/lakehouse.Lakehouse/Tables/claims",
			want: azureLocation{Account: "onelake", Container: "workspace", Prefix: "lakehouse.Lakehouse/Tables/claims", BlobHost: "onelake.blob.fabric.microsoft.com"},
		},
		{
			// OneLake with GUIDs and a regional endpoint.
			uri:  "abfss://0b6e2a3c-1111-2222-3333-444455556666@westus-onelake.dfs.fabric.microsoft.com/9a8b7c6d-aaaa-bbbb-cccc-ddddeeeeffff/Tables/t",
			want: azureLocation{Account: "westus-onelake", Container: "0b6e2a3c-1111-2222-3333-444455556666", Prefix: "9a8b7c6d-aaaa-bbbb-cccc-ddddeeeeffff/Tables/t", BlobHost: "westus-onelake.blob.fabric.microsoft.com"},
		},
		{
			uri:        "az://container/path/table",
			envAccount: "envacct",
			want:       azureLocation{Account: "envacct", Container: "container", Prefix: "path/table", BlobHost: "envacct.blob.core.windows.net"},
		},
		{
			uri:        "azure://container/table",
			envAccount: "envacct",
			want:       azureLocation{Account: "envacct", Container: "container", Prefix: "table", BlobHost: "envacct.blob.core.windows.net"},
		},
		{
			// Without the env account (a connection string will name it).
			uri:  "az://container/table",
			want: azureLocation{Container: "container", Prefix: "table"},
		},
		{
			// az:// with the container@host form names the account itself.
			uri:        "az://c@acct.blob.core.windows.net/t",
			envAccount: "ignored",
			want:       azureLocation{Account: "acct", Container: "c", Prefix: "t", BlobHost: "acct.blob.core.windows.net"},
		},
		{uri: "abfss://account.dfs.core.windows.net/t", wantErr: "missing container"},
		{uri: "abfss://c@example.com/t", wantErr: "not an Azure storage host"},
		{uri: "abfss://c@account.queue.core.windows.net/t", wantErr: "not an Azure storage host"},
		{uri: "abfss://c:secretkey@account.dfs.core.windows.net/t", wantErr: "credentials in the URI"},
		{uri: "abfss://c@account.dfs.core.windows.net:443/t", wantErr: "port"},
		{uri: "az:///t", envAccount: "a", wantErr: "missing container"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			got, err := parseAzureURI(mustURL(t, tt.uri), tt.envAccount)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secretkey") {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseGCSURI(t *testing.T) {
	tests := []struct {
		uri     string
		want    gcsLocation
		wantErr string
	}{
		{uri: "gs://bucket/path/to/table", want: gcsLocation{Bucket: "bucket", Prefix: "path/to/table"}},
		{uri: "gs://bucket/t/", want: gcsLocation{Bucket: "bucket", Prefix: "t"}},
		{uri: "gs://bucket", want: gcsLocation{Bucket: "bucket"}},
		{uri: "gs:///t", wantErr: "missing bucket"},
		{uri: "gs://bucket:1/t", wantErr: "no user or port"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			got, err := parseGCSURI(mustURL(t, tt.uri))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOpenDispatchesEverySchemeForm(t *testing.T) {
	for _, s := range []string{"file", "s3", "s3a", "abfss", "abfs", "az", "azure", "gs"} {
		found := false
		for _, r := range Schemes() {
			found = found || r == s
		}
		if !found {
			t.Errorf("scheme %q has no registered backend (have %v)", s, Schemes())
		}
	}
	_, err := Open(context.Background(), "hdfs://nn/t", Options{})
	if err == nil || !strings.Contains(err.Error(), `no backend for scheme "hdfs"`) {
		t.Fatalf("Open(hdfs://) error = %v", err)
	}
}

// TestOpenCloudURIs opens each cloud form with emulator-style settings (no
// network is used by opening) and checks the resulting root.
func TestOpenCloudURIs(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "")
	t.Setenv("AZURE_STORAGE_SAS_TOKEN", "")
	t.Setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
	t.Setenv("AZURE_STORAGE_ACCOUNT_KEY", "a2V5") // base64 "key"
	t.Setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:1")
	ctx := context.Background()

	// AWS itself needs a region; an S3-compatible endpoint does not.
	if _, err := Open(ctx, "s3://b/t", Options{}); err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Fatalf("s3 without region: %v", err)
	}
	cases := []struct {
		uri  string
		opts Options
		want string
		root string
	}{
		{"s3://b/t/x/", Options{Region: "eu-west-1"}, "s3://b/t/x", "t/x"},
		{"s3a://b/t", Options{Endpoint: "http://127.0.0.1:9"}, "s3://b/t", "t"},
		{"abfss://c@acct.dfs.core.windows.net/t/", Options{}, "abfss://c@acct.dfs.core.windows.net/t", "t"},
		{"az://c/t", Options{}, "az://c/t", "t"},
		{"gs://b/t/", Options{}, "gs://b/t", "t"},
	}
	for _, c := range cases {
		s, err := Open(ctx, c.uri, c.opts)
		if err != nil {
			t.Fatalf("Open(%q): %v", c.uri, err)
		}
		if s.URI() != c.want {
			t.Errorf("Open(%q).URI() = %q, want %q", c.uri, s.URI(), c.want)
		}
		var root string
		switch x := s.(type) {
		case *S3:
			root = x.root
		case *Azure:
			root = x.root
		case *GCS:
			root = x.root
		}
		if root != c.root {
			t.Errorf("Open(%q) root = %q, want %q", c.uri, root, c.root)
		}
	}
	// The emulator host is used as is, anonymously.
	g, err := Open(ctx, "gs://b/t", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ep := g.(*GCS).endpoint; ep != "http://127.0.0.1:1" {
		t.Errorf("GCS endpoint = %q", ep)
	}
	// An account key without an account is refused for az://.
	t.Setenv("AZURE_STORAGE_ACCOUNT_NAME", "")
	if _, err := Open(ctx, "az://c/t", Options{}); err == nil || !strings.Contains(err.Error(), "no storage account") {
		t.Fatalf("az:// without account: %v", err)
	}
}

func TestS3PathStyle(t *testing.T) {
	t.Setenv(envS3ForcePathStyle, "")
	tests := []struct {
		extra    string
		env      string
		endpoint string
		want     bool
		wantErr  bool
	}{
		{endpoint: "", want: false},
		{endpoint: "https://s3.eu-central-1.amazonaws.com", want: false},
		{endpoint: "http://127.0.0.1:9000", want: true},
		{endpoint: "http://localhost:9000", want: true},
		{endpoint: "http://[::1]:9000", want: true},
		{endpoint: "https://minio.example.com", want: false},
		{extra: "true", endpoint: "https://minio.example.com", want: true},
		{extra: "false", endpoint: "http://127.0.0.1:9000", want: false},
		{env: "1", endpoint: "https://r2.example.com", want: true},
		{extra: "false", env: "true", want: false},
		{extra: "maybe", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s", tt.extra, tt.env, tt.endpoint), func(t *testing.T) {
			t.Setenv(envS3ForcePathStyle, tt.env)
			got, err := s3PathStyle(Options{Extra: map[string]string{S3ForcePathStyle: tt.extra}}, tt.endpoint)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestS3EndpointPrecedence(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "http://general:1")
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://s3specific:2")
	if got := s3Endpoint(Options{Endpoint: "http://opt:3"}); got != "http://opt:3" {
		t.Errorf("with option: %q", got)
	}
	if got := s3Endpoint(Options{}); got != "http://s3specific:2" {
		t.Errorf("service-specific env: %q", got)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	if got := s3Endpoint(Options{}); got != "http://general:1" {
		t.Errorf("general env: %q", got)
	}
}

func TestGCSEndpoint(t *testing.T) {
	tests := []struct {
		opts     Options
		emulator string
		want     string
		anon     bool
	}{
		{want: gcsDefaultEndpoint},
		{emulator: "localhost:4443", want: "http://localhost:4443", anon: true},
		{emulator: "http://127.0.0.1:4443/", want: "http://127.0.0.1:4443", anon: true},
		{opts: Options{Endpoint: "https://storage.example.com/storage/v1/"}, want: "https://storage.example.com"},
		{opts: Options{Endpoint: "https://e", Extra: map[string]string{GCSAnonymous: "true"}}, want: "https://e", anon: true},
		{opts: Options{Endpoint: "https://e"}, emulator: "localhost:1", want: "https://e"},
	}
	for _, tt := range tests {
		t.Setenv(envGCSEmulator, tt.emulator)
		got, anon, err := gcsEndpoint(tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want || anon != tt.anon {
			t.Errorf("gcsEndpoint(%+v, emulator %q) = %q, %v; want %q, %v", tt.opts, tt.emulator, got, anon, tt.want, tt.anon)
		}
	}
}

func TestGCSObjectURLEscaping(t *testing.T) {
	g := &GCS{endpoint: "http://h", bucket: "b"}
	got := g.objectURL("t/ts=2024-01-01 10%3A00/p?#.parquet", url.Values{"alt": {"media"}})
	want := "http://h/storage/v1/b/b/o/t%2Fts=2024-01-01%2010%253A00%2Fp%3F%23.parquet?alt=media"
	if got != want {
		t.Fatalf("objectURL = %q, want %q", got, want)
	}
	u := g.uploadURL("t/a b", true)
	if !strings.Contains(u, "ifGenerationMatch=0") || !strings.Contains(u, "name=t%2Fa+b") || !strings.Contains(u, "uploadType=media") {
		t.Fatalf("uploadURL = %q", u)
	}
	if strings.Contains(g.uploadURL("t/a", false), "ifGenerationMatch") {
		t.Fatalf("unconditional upload carries a precondition")
	}
}

func TestAzureRedaction(t *testing.T) {
	t.Setenv(envAzureSAS, "?sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=abcDEF%2B123%3D")
	inner := &url.Error{Op: "Put", URL: "https://a.blob.core.windows.net/c/x?sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=abcDEF%2B123%3D", Err: errors.New("connection reset")}
	err := redactAzureErr(fmt.Errorf("upload: %w", inner))
	if strings.Contains(err.Error(), "abcDEF") {
		t.Fatalf("SAS signature leaked: %v", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("redaction lost the error chain: %T", err)
	}
	// A signature of another SAS (say, from a connection string) too.
	err = redactAzureErr(errors.New(`Get "https://a/c/x?sp=r&sig=zzzSECRET": EOF`))
	if strings.Contains(err.Error(), "zzzSECRET") || !strings.Contains(err.Error(), "sig=REDACTED") {
		t.Fatalf("signature not redacted: %v", err)
	}
	plain := errors.New("nothing to hide")
	if redactAzureErr(plain) != plain {
		t.Fatalf("an error without secrets was rewrapped")
	}
}

func TestAzureURLIsAccount(t *testing.T) {
	for _, tt := range []struct {
		url  string
		acct string
		want bool
	}{
		{"https://acct.blob.core.windows.net/c", "acct", true},
		{"https://other.blob.core.windows.net/c", "acct", false},
		{"http://127.0.0.1:10000/devstoreaccount1/c", "devstoreaccount1", true},
		{"http://127.0.0.1:10000/devstoreaccount1/c", "acct", false},
	} {
		if got := azureURLIsAccount(tt.url, tt.acct); got != tt.want {
			t.Errorf("azureURLIsAccount(%q, %q) = %v", tt.url, tt.acct, got)
		}
	}
}

// fakeErr carries a condOutcome for conditionalCreate tests.
type fakeErr struct{ o condOutcome }

func (e fakeErr) Error() string { return fmt.Sprintf("fake outcome %d", e.o) }

func classifyFake(err error) condOutcome {
	var f fakeErr
	if errors.As(err, &f) {
		return f.o
	}
	return condDone
}

func TestConditionalCreate(t *testing.T) {
	fast := condRetryPolicy{attempts: 4, base: time.Millisecond, max: 2 * time.Millisecond}
	data := []byte("ours")
	run := func(outcomes []error, stored []byte) (error, int) {
		n := 0
		err := conditionalCreate(context.Background(), fast, "_delta_log/1.json", data,
			func(context.Context) error {
				e := outcomes[n]
				n++
				return e
			}, classifyFake,
			func(context.Context) ([]byte, error) {
				if stored == nil {
					return nil, ErrNotFound
				}
				return stored, nil
			})
		return err, n
	}
	exists := fakeErr{condExists}
	conflict := fakeErr{condRetry}
	lost := fakeErr{condUnknown}

	if err, n := run([]error{nil}, nil); err != nil || n != 1 {
		t.Fatalf("success: %v after %d", err, n)
	}
	if err, _ := run([]error{exists}, data); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "_delta_log/1.json") {
		t.Fatalf("plain conflict, even with our bytes stored, must be ErrExists: %v", err)
	}
	if err, n := run([]error{conflict, conflict, nil}, nil); err != nil || n != 3 {
		t.Fatalf("409 then success: %v after %d", err, n)
	}
	if err, _ := run([]error{conflict, exists}, data); !errors.Is(err, ErrExists) {
		t.Fatalf("409 then 412: %v", err)
	}
	// Lost answer, then "exists": our own first attempt won.
	if err, n := run([]error{lost, exists}, data); err != nil || n != 2 {
		t.Fatalf("lost answer then exists with our bytes: %v after %d", err, n)
	}
	// Lost answer, then "exists" with other bytes: someone else won.
	if err, _ := run([]error{lost, exists}, []byte("theirs")); !errors.Is(err, ErrExists) {
		t.Fatalf("lost answer then exists with other bytes: %v", err)
	}
	if err, n := run([]error{conflict, conflict, conflict, conflict}, nil); err == nil || errors.Is(err, ErrExists) || n != 4 || !strings.Contains(err.Error(), "giving up after 4") {
		t.Fatalf("retries exhausted: %v after %d", err, n)
	}
	if err, n := run([]error{errors.New("403 forbidden")}, nil); err == nil || n != 1 || errors.Is(err, ErrExists) {
		t.Fatalf("permanent error: %v after %d", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := conditionalCreate(ctx, fast, "p", data, func(ctx context.Context) error { return ctx.Err() }, classifyFake, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestClassifiersRetryOnlyWhatIsSafe(t *testing.T) {
	// GCS classification by status; the S3 and Azure ones read their SDKs'
	// error types and are exercised against the emulators.
	for st, want := range map[int]condOutcome{412: condExists, 429: condRetry, 503: condUnknown, 500: condUnknown, 408: condUnknown, 403: condDone, 404: condDone} {
		if got := classifyGCSConditional(&gcsError{Status: st}); got != want {
			t.Errorf("GCS %d: %v, want %v", st, got, want)
		}
	}
	if got := classifyGCSConditional(&url.Error{Op: "Post", URL: "u", Err: timeoutErr{}}); got != condUnknown {
		t.Errorf("GCS transport error: %v", got)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyS3AndAzureErrors(t *testing.T) {
	s3err := func(st int) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: st}},
			Err:      errors.New("api error"),
		}}
	}
	for st, want := range map[int]condOutcome{412: condExists, 409: condRetry, 429: condRetry, 500: condUnknown, 503: condUnknown, 403: condDone, 400: condDone} {
		if got := classifyS3Conditional(fmt.Errorf("op: %w", s3err(st))); got != want {
			t.Errorf("S3 %d: %v, want %v", st, got, want)
		}
	}
	if got := classifyS3Conditional(&smithyhttp.RequestSendError{Err: errors.New("connection reset")}); got != condUnknown {
		t.Errorf("S3 send error: %v", got)
	}
	if got := classifyS3Conditional(errors.New("failed to retrieve credentials")); got != condDone {
		t.Errorf("S3 credential error: %v", got)
	}
	if !s3NotFound(s3err(404)) || s3NotFound(s3err(403)) {
		t.Errorf("s3NotFound misreads 404/403")
	}

	az := func(st int, code string) error { return &azcore.ResponseError{StatusCode: st, ErrorCode: code} }
	cases := []struct {
		err  error
		want condOutcome
	}{
		{az(409, "BlobAlreadyExists"), condExists},
		{az(412, "ConditionNotMet"), condExists},
		{az(409, "LeaseIdMissing"), condDone},
		{az(503, "ServerBusy"), condRetry},
		{az(500, "InternalError"), condUnknown},
		{az(403, "AuthorizationFailure"), condDone},
		{&url.Error{Op: "Put", URL: "u", Err: timeoutErr{}}, condUnknown},
	}
	for _, c := range cases {
		if got := classifyAzureConditional(c.err); got != c.want {
			t.Errorf("Azure %v: %v, want %v", c.err, got, c.want)
		}
	}
	if !azureNotFound(az(404, "BlobNotFound")) || !azureNotFound(az(404, "")) || azureNotFound(az(404, "ContainerNotFound")) {
		t.Errorf("azureNotFound misreads 404s")
	}
}
