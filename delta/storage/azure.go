package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

func init() {
	for _, s := range []string{"abfss", "abfs", "az", "azure"} {
		Register(s, openAzure)
	}
}

// Environment variables read by the Azure backend. Secrets are only ever read
// from here, never logged, and never put in errors.
const (
	envAzureAccount       = "AZURE_STORAGE_ACCOUNT_NAME"
	envAzureAccountAlt    = "AZURE_STORAGE_ACCOUNT"
	envAzureConnString    = "AZURE_STORAGE_CONNECTION_STRING"
	envAzureAccountKey    = "AZURE_STORAGE_ACCOUNT_KEY"
	envAzureAccountKeyAlt = "AZURE_STORAGE_KEY"
	envAzureSAS           = "AZURE_STORAGE_SAS_TOKEN"
)

// Azure is a Store in an Azure Blob Storage container (ADLS Gen2 file system,
// or a OneLake workspace) under a prefix, through the Blob API.
// PutIfAbsent is Put Blob with If-None-Match: *, evaluated atomically by the
// service: of concurrent writers exactly one succeeds, the others get 409
// BlobAlreadyExists or 412 ConditionNotMet.
type Azure struct {
	client *container.Client
	root   string
	uri    string
	retry  condRetryPolicy
}

// azureLocation is what a table URI says about where the table lives.
type azureLocation struct {
	// Account is the storage account ("onelake" for OneLake); empty when an
	// az:// URI is used without AZURE_STORAGE_ACCOUNT_NAME (the connection
	// string then names it).
	Account string
	// Container is the container, ADLS Gen2 file system or OneLake workspace.
	Container string
	// Prefix is the table root inside the container.
	Prefix string
	// BlobHost is the Blob API host, e.g. account.blob.core.windows.net or
	// onelake.blob.fabric.microsoft.com; empty when Account is.
	BlobHost string
}

// parseAzureURI understands
//
//	abfs[s]://container@account.dfs.core.windows.net/path
//	abfs[s]://workspace@onelake.dfs.fabric.microsoft.com/item.Lakehouse/Tables/t
//	abfs[s]://container@account.blob.core.windows.net/path
//	az://container/path and azure://container/path (account from envAccount)
//
// The DFS host of ADLS Gen2 and OneLake is mapped to its Blob endpoint
// (the "dfs" label becomes "blob"), which serves the same data.
func parseAzureURI(u *url.URL, envAccount string) (azureLocation, error) {
	scheme := strings.ToLower(u.Scheme)
	if u.Port() != "" {
		return azureLocation{}, fmt.Errorf("%s URI %q: a port in the URI is not supported; set the endpoint instead", scheme, u.Redacted())
	}
	if _, hasPass := u.User.Password(); hasPass {
		return azureLocation{}, fmt.Errorf("%s URI %q: credentials in the URI are not supported; use the environment", scheme, u.Redacted())
	}
	loc := azureLocation{Prefix: rootPrefix(u.Path)}
	if u.User != nil {
		// container@host form (abfs, abfss, and az://container@host too).
		loc.Container = u.User.Username()
		host := strings.ToLower(u.Hostname())
		labels := strings.Split(host, ".")
		if len(labels) < 3 || labels[0] == "" || (labels[1] != "dfs" && labels[1] != "blob") {
			return azureLocation{}, fmt.Errorf("%s URI %q: host %q is not an Azure storage host (want account.dfs.core.windows.net or onelake.dfs.fabric.microsoft.com)", scheme, u.Redacted(), host)
		}
		loc.Account = labels[0]
		labels[1] = "blob"
		loc.BlobHost = strings.Join(labels, ".")
	} else {
		if scheme == "abfs" || scheme == "abfss" {
			return azureLocation{}, fmt.Errorf("%s URI %q: missing container (want %s://container@account.dfs.core.windows.net/path)", scheme, u.Redacted(), scheme)
		}
		loc.Container = u.Hostname()
		loc.Account = strings.TrimSpace(envAccount)
		if loc.Account != "" {
			loc.BlobHost = loc.Account + ".blob.core.windows.net"
		}
	}
	if loc.Container == "" {
		return azureLocation{}, fmt.Errorf("%s URI %q: missing container", scheme, u.Redacted())
	}
	return loc, nil
}

func azureEnvAccount() string {
	if v := os.Getenv(envAzureAccount); v != "" {
		return v
	}
	return os.Getenv(envAzureAccountAlt)
}

func openAzure(ctx context.Context, u *url.URL, opts Options) (Store, error) {
	loc, err := parseAzureURI(u, azureEnvAccount())
	if err != nil {
		return nil, err
	}
	uri := (&url.URL{Scheme: strings.ToLower(u.Scheme), User: u.User, Host: u.Host, Path: "/" + loc.Prefix}).String()
	if u.User == nil {
		uri = strings.ToLower(u.Scheme) + "://" + loc.Container + "/" + loc.Prefix
	}
	client, err := newAzureContainerClient(ctx, loc, opts)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", uri, err)
	}
	return &Azure{client: client, root: loc.Prefix, uri: uri, retry: defaultCondRetry}, nil
}

// newAzureContainerClient picks the credential from the environment, in this
// order: connection string, account key, SAS token, then Microsoft Entra ID
// through DefaultAzureCredential (environment, workload identity, managed
// identity, Azure CLI, ...).
func newAzureContainerClient(_ context.Context, loc azureLocation, opts Options) (*container.Client, error) {
	clientOpts := &container.ClientOptions{}
	if cs := os.Getenv(envAzureConnString); cs != "" {
		if opts.Endpoint != "" {
			return nil, fmt.Errorf("both an endpoint option and %s are set: the connection string names the endpoint, so set only one", envAzureConnString)
		}
		c, err := container.NewClientFromConnectionString(cs, loc.Container, clientOpts)
		if err != nil {
			// The SDK's parse errors do not echo the string.
			return nil, fmt.Errorf("using %s: %w", envAzureConnString, redactAzureErr(err))
		}
		if loc.Account != "" && !azureURLIsAccount(c.URL(), loc.Account) {
			return nil, fmt.Errorf("%s is for another storage account than %q named by the table URI", envAzureConnString, loc.Account)
		}
		return c, nil
	}

	serviceURL := strings.TrimSpace(opts.Endpoint)
	if serviceURL == "" {
		if loc.BlobHost == "" {
			return nil, fmt.Errorf("no storage account: name it in the URI (abfss://container@account.dfs.core.windows.net/path) or set %s", envAzureAccount)
		}
		serviceURL = "https://" + loc.BlobHost
	} else if _, err := url.Parse(serviceURL); err != nil {
		return nil, fmt.Errorf("azure endpoint %q is not a URL", serviceURL)
	}
	containerURL := strings.TrimRight(serviceURL, "/") + "/" + url.PathEscape(loc.Container)

	if key := firstEnv(envAzureAccountKey, envAzureAccountKeyAlt); key != "" {
		if loc.Account == "" {
			return nil, fmt.Errorf("an account key is set but no storage account: set %s", envAzureAccount)
		}
		cred, err := container.NewSharedKeyCredential(loc.Account, key)
		if err != nil {
			return nil, fmt.Errorf("using %s: invalid account key (%s)", envAzureAccountKey, redactAzureErr(err))
		}
		return container.NewClientWithSharedKeyCredential(containerURL, cred, clientOpts)
	}
	if sas := strings.TrimPrefix(strings.TrimSpace(os.Getenv(envAzureSAS)), "?"); sas != "" {
		c, err := container.NewClientWithNoCredential(containerURL+"?"+sas, clientOpts)
		if err != nil {
			return nil, fmt.Errorf("using %s: %w", envAzureSAS, redactAzureErr(err))
		}
		return c, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("no Azure credential in the environment (%s, %s, %s or Microsoft Entra ID): %w", envAzureConnString, envAzureAccountKey, envAzureSAS, err)
	}
	return container.NewClient(containerURL, cred, clientOpts)
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// azureURLIsAccount reports whether a container URL belongs to account, as
// account.blob.<suffix> or as an emulator's http://host:port/account/.
func azureURLIsAccount(raw, account string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	account = strings.ToLower(account)
	host := strings.ToLower(u.Hostname())
	if strings.HasPrefix(host, account+".") {
		return true
	}
	return strings.HasPrefix(strings.ToLower(u.Path), "/"+account+"/")
}

// azureSigRE finds the signature of a SAS in a printed URL.
var azureSigRE = regexp.MustCompile(`(?i)([?&]sig)=[^&\s"']*`)

// redactingError hides SAS parameters that transport errors (*url.Error)
// print as part of the request URL, while keeping the error chain.
type redactingError struct {
	msg string
	err error
}

func (e *redactingError) Error() string { return e.msg }
func (e *redactingError) Unwrap() error { return e.err }

func redactAzureErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := msg
	if sas := strings.TrimPrefix(strings.TrimSpace(os.Getenv(envAzureSAS)), "?"); sas != "" {
		red = strings.ReplaceAll(red, sas, "REDACTED")
	}
	red = azureSigRE.ReplaceAllString(red, "$1=REDACTED")
	if red == msg {
		return err
	}
	return &redactingError{msg: red, err: err}
}

// URI returns the table root.
func (a *Azure) URI() string { return a.uri }

func (a *Azure) key(p string) string { return joinKey(a.root, p) }

func azureStatus(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func azureNotFound(err error) bool {
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return true
	}
	// HEAD answers carry no body; a 404 that is not about the container is
	// a missing blob.
	return azureStatus(err) == 404 && !bloberror.HasCode(err, bloberror.ContainerNotFound)
}

// isHNSDirectory reports the placeholder blobs an ADLS Gen2 (hierarchical
// namespace) account lists for directories.
func isHNSDirectory(md map[string]*string) bool {
	for k, v := range md {
		if strings.EqualFold(k, "hdi_isfolder") && v != nil && strings.EqualFold(*v, "true") {
			return true
		}
	}
	return false
}

// Get reads the whole blob.
func (a *Azure) Get(ctx context.Context, p string) ([]byte, error) {
	resp, err := a.client.NewBlobClient(a.key(p)).DownloadStream(ctx, nil)
	if err != nil {
		if azureNotFound(err) {
			return nil, fmt.Errorf("reading %s: %w", p, ErrNotFound)
		}
		return nil, fmt.Errorf("reading %s: %w", p, redactAzureErr(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, redactAzureErr(err))
	}
	return b, nil
}

func (a *Azure) upload(ctx context.Context, p string, data []byte, cond *blob.AccessConditions) error {
	_, err := a.client.NewBlockBlobClient(a.key(p)).Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
		AccessConditions: cond,
	})
	return err
}

// Put writes the blob (one Put Blob request), replacing any existing one.
func (a *Azure) Put(ctx context.Context, p string, data []byte) error {
	if err := a.upload(ctx, p, data, nil); err != nil {
		return fmt.Errorf("writing %s: %w", p, redactAzureErr(err))
	}
	return nil
}

// PutIfAbsent creates the blob with Put Blob and If-None-Match: *.
func (a *Azure) PutIfAbsent(ctx context.Context, p string, data []byte) error {
	cond := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}
	attempt := func(ctx context.Context) error {
		// Retries are ours, so that a retry after a lost answer is known.
		ctx = policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
		return redactAzureErr(a.upload(ctx, p, data, cond))
	}
	return conditionalCreate(ctx, a.retry, p, data, attempt, classifyAzureConditional, func(ctx context.Context) ([]byte, error) {
		return a.Get(ctx, p)
	})
}

func classifyAzureConditional(err error) condOutcome {
	switch st := azureStatus(err); {
	case st == 412 || (st == 409 && bloberror.HasCode(err, bloberror.BlobAlreadyExists)):
		return condExists
	case st == 429 || st == 503:
		// Throttled (ServerBusy): the request was not carried out.
		return condRetry
	case st == 408 || st >= 500:
		return condUnknown
	case st != 0:
		return condDone
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
		return condUnknown
	}
	return condDone
}

// List returns the blobs under prefix, sorted by path. Directory placeholder
// blobs of hierarchical-namespace accounts are left out.
func (a *Azure) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	pager := a.client.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:  to.Ptr(listPrefix(a.root, prefix)),
		Include: container.ListBlobsInclude{Metadata: true},
	})
	var out []ObjectInfo
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %q: %w", prefix, redactAzureErr(err))
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || isHNSDirectory(b.Metadata) {
				continue
			}
			rel, ok := relKey(a.root, *b.Name)
			if !ok {
				continue
			}
			info := ObjectInfo{Path: rel}
			if b.Properties != nil {
				info.Size = deref(b.Properties.ContentLength, 0)
				info.ModTime = deref(b.Properties.LastModified, info.ModTime)
			}
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Stat returns the blob's size and modification time.
func (a *Azure) Stat(ctx context.Context, p string) (ObjectInfo, error) {
	props, err := a.client.NewBlobClient(a.key(p)).GetProperties(ctx, nil)
	if err != nil {
		if azureNotFound(err) {
			return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, ErrNotFound)
		}
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, redactAzureErr(err))
	}
	if isHNSDirectory(props.Metadata) {
		return ObjectInfo{}, fmt.Errorf("stat %s: is a directory: %w", p, ErrNotFound)
	}
	info := ObjectInfo{Path: p, Size: deref(props.ContentLength, 0)}
	info.ModTime = deref(props.LastModified, info.ModTime)
	return info, nil
}

// Delete removes the blob; the service answers 404 for a missing one.
func (a *Azure) Delete(ctx context.Context, p string) error {
	if _, err := a.client.NewBlobClient(a.key(p)).Delete(ctx, nil); err != nil {
		if azureNotFound(err) {
			return fmt.Errorf("deleting %s: %w", p, ErrNotFound)
		}
		return fmt.Errorf("deleting %s: %w", p, redactAzureErr(err))
	}
	return nil
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
