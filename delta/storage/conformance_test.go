package storage_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/delta/storage/storetest"
)

// Environment variables naming the emulators (scripts/start-emulators.sh
// prints them).
const (
	envS3Endpoint  = "CLAIMX_TEST_S3_ENDPOINT"  // e.g. http://127.0.0.1:19090 (moto)
	envAzurite     = "CLAIMX_TEST_AZURITE"      // blob endpoint, e.g. http://127.0.0.1:10100/devstoreaccount1
	envGCSEndpoint = "CLAIMX_TEST_GCS_ENDPOINT" // e.g. http://127.0.0.1:14443 (fake-gcs-server)
	envRequire     = "CLAIMX_REQUIRE_INTEGRATION"
)

// Azurite's documented development account; not a secret.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

const testBucket = "claimx-test"

// emulator returns the value of env, skipping the test when it is unset
// (failing instead under CLAIMX_REQUIRE_INTEGRATION=1).
func emulator(t *testing.T, env, what string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(env))
	if v != "" {
		return v
	}
	msg := fmt.Sprintf("%s not set: no %s emulator (start one with scripts/start-emulators.sh)", env, what)
	if os.Getenv(envRequire) == "1" {
		t.Fatalf("%s, but %s=1", msg, envRequire)
	}
	t.Skip(msg)
	return ""
}

func runID() string {
	return time.Now().UTC().Format("20060102T150405") + "-" + uuid.NewString()[:8]
}

func TestLocalConformance(t *testing.T) {
	s, err := storage.Open(context.Background(), t.TempDir()+"/table", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunStoreConformance(t, s)
}

func TestLocalConformanceFileURI(t *testing.T) {
	s, err := storage.Open(context.Background(), "file://"+t.TempDir()+"/table", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunStoreConformance(t, s)
}

func setS3TestEnv(t *testing.T) {
	// Emulator credentials; moto accepts any.
	t.Setenv("AWS_ACCESS_KEY_ID", "claimx-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "claimx-test")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
}

func createS3Bucket(t *testing.T, endpoint string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("claimx-test", "claimx-test", "")))
	if err != nil {
		t.Fatal(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(endpoint); o.UsePathStyle = true })
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(testBucket)})
	if err != nil && !strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") && !strings.Contains(err.Error(), "BucketAlreadyExists") {
		t.Fatalf("creating bucket %s: %v", testBucket, err)
	}
}

func TestS3Conformance(t *testing.T) {
	ep := emulator(t, envS3Endpoint, "S3")
	setS3TestEnv(t)
	createS3Bucket(t, ep)
	for _, scheme := range []string{"s3", "s3a"} {
		t.Run(scheme, func(t *testing.T) {
			s, err := storage.Open(context.Background(), scheme+"://"+testBucket+"/tables/"+runID(), storage.Options{Endpoint: ep})
			if err != nil {
				t.Fatal(err)
			}
			storetest.RunStoreConformance(t, s)
		})
	}
}

// TestS3EndpointFromEnv opens through AWS_ENDPOINT_URL_S3 and an explicit
// path-style setting instead of Options.
func TestS3EndpointFromEnv(t *testing.T) {
	ep := emulator(t, envS3Endpoint, "S3")
	setS3TestEnv(t)
	createS3Bucket(t, ep)
	t.Setenv("AWS_ENDPOINT_URL_S3", ep)
	ctx := context.Background()
	s, err := storage.Open(ctx, "s3://"+testBucket+"/env/"+runID(), storage.Options{Extra: map[string]string{storage.S3ForcePathStyle: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{}\n")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second PutIfAbsent: %v, want ErrExists", err)
	}
}

func TestS3ListPagination(t *testing.T) {
	ep := emulator(t, envS3Endpoint, "S3")
	setS3TestEnv(t)
	createS3Bucket(t, ep)
	ctx := context.Background()
	s, err := storage.Open(ctx, "s3://"+testBucket+"/pages/"+runID(), storage.Options{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	// ListObjectsV2 returns at most 1000 keys a page.
	const n = 1003
	for i := 0; i < n; i++ {
		if err := s.Put(ctx, fmt.Sprintf("_delta_log/%020d.json", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, "_delta_log/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || got[n-1].Path != fmt.Sprintf("_delta_log/%020d.json", n-1) {
		t.Fatalf("List returned %d objects, want %d", len(got), n)
	}
}

func setAzuriteEnv(t *testing.T) {
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "")
	t.Setenv("AZURE_STORAGE_SAS_TOKEN", "")
	t.Setenv("AZURE_STORAGE_ACCOUNT_NAME", azuriteAccount)
	t.Setenv("AZURE_STORAGE_ACCOUNT_KEY", azuriteKey)
}

func createAzuriteContainer(t *testing.T, endpoint, name string) {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(strings.TrimRight(endpoint, "/")+"/"+name, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(context.Background(), nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("creating container %s: %v", name, err)
	}
}

func TestAzureConformance(t *testing.T) {
	ep := emulator(t, envAzurite, "Azurite")
	setAzuriteEnv(t)
	createAzuriteContainer(t, ep, testBucket)
	uris := map[string]string{
		"az":    "az://" + testBucket + "/tables/" + runID(),
		"azure": "azure://" + testBucket + "/tables/" + runID(),
		"abfss": "abfss://" + testBucket + "@" + azuriteAccount + ".dfs.core.windows.net/tables/" + runID(),
	}
	for name, uri := range uris {
		t.Run(name, func(t *testing.T) {
			s, err := storage.Open(context.Background(), uri, storage.Options{Endpoint: ep})
			if err != nil {
				t.Fatal(err)
			}
			storetest.RunStoreConformance(t, s)
		})
	}
}

// TestAzureConnectionString opens Azurite through a connection string, and
// checks one naming another account than the URI is refused.
func TestAzureConnectionString(t *testing.T) {
	ep := emulator(t, envAzurite, "Azurite")
	setAzuriteEnv(t)
	createAzuriteContainer(t, ep, testBucket)
	t.Setenv("AZURE_STORAGE_ACCOUNT_KEY", "")
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName="+azuriteAccount+";AccountKey="+azuriteKey+";BlobEndpoint="+ep+";")
	ctx := context.Background()
	s, err := storage.Open(ctx, "az://"+testBucket+"/cs/"+runID(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutIfAbsent(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIfAbsent(ctx, "a", []byte("2")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second PutIfAbsent: %v, want ErrExists", err)
	}
	_, err = storage.Open(ctx, "abfss://"+testBucket+"@otheraccount.dfs.core.windows.net/x", storage.Options{})
	if err == nil || !strings.Contains(err.Error(), "another storage account") {
		t.Fatalf("opening another account with the connection string: %v", err)
	}
	if strings.Contains(fmt.Sprint(err), azuriteKey) {
		t.Fatalf("error leaks the account key: %v", err)
	}
}

func createGCSBucket(t *testing.T, endpoint string) {
	t.Helper()
	body := strings.NewReader(`{"name":"` + testBucket + `"}`)
	resp, err := http.Post(strings.TrimRight(endpoint, "/")+"/storage/v1/b?project=claimx-test", "application/json", body)
	if err != nil {
		t.Fatalf("creating bucket: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != 409 {
		t.Fatalf("creating bucket: HTTP %d", resp.StatusCode)
	}
}

func TestGCSConformance(t *testing.T) {
	ep := emulator(t, envGCSEndpoint, "GCS")
	t.Setenv("STORAGE_EMULATOR_HOST", ep)
	createGCSBucket(t, ep)
	s, err := storage.Open(context.Background(), "gs://"+testBucket+"/tables/"+runID(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunStoreConformance(t, s)
}

func TestGCSListPagination(t *testing.T) {
	ep := emulator(t, envGCSEndpoint, "GCS")
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	createGCSBucket(t, ep)
	ctx := context.Background()
	// Through Options.Endpoint this time, anonymous by option.
	s, err := storage.Open(ctx, "gs://"+testBucket+"/pages/"+runID(), storage.Options{Endpoint: ep, Extra: map[string]string{storage.GCSAnonymous: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1003
	for i := 0; i < n; i++ {
		if err := s.Put(ctx, fmt.Sprintf("_delta_log/%020d.json", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, "_delta_log/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("List returned %d objects, want %d", len(got), n)
	}
}
