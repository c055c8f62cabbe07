// Package broker runs an embedded Kafka-protocol broker (franz-go's kfake) so
// that local runs and tests need no outside Kafka. Any Kafka client, kcat
// included, can connect to it.
package broker

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config says where and how the embedded broker listens.
type Config struct {
	// Addr is host:port to listen on; port 0 picks a free port. Clients are
	// told to reconnect to this host, so use an address they can reach.
	Addr string
	// DataDir, when set, persists topics, records and committed offsets so a
	// restarted broker keeps them.
	DataDir string
	// DefaultPartitions is used for topics created without a partition count
	// (auto-created ones included).
	DefaultPartitions int
	// AutoCreateTopics lets producers create topics by writing to them.
	AutoCreateTopics bool
	// SeedTopics are created at start with DefaultPartitions partitions.
	SeedTopics []string
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
}

// Start starts a one-node broker.
func Start(cfg Config) (*Broker, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("starting embedded broker: parsing address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("starting embedded broker: parsing port of %q: %w", cfg.Addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	parts := cfg.DefaultPartitions
	if parts <= 0 {
		parts = 1
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DefaultNumPartitions(parts),
		// kfake always asks for 127.0.0.1; listen where the caller asked instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.AutoCreateTopics {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if len(cfg.SeedTopics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(parts), cfg.SeedTopics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting embedded broker on %s: %w", cfg.Addr, err)
	}
	return &Broker{cluster: c}, nil
}

// Addrs returns the addresses clients should use as seed brokers.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Cluster exposes the underlying kfake cluster, for tests that inject faults.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker, flushing persisted state when DataDir is set.
func (b *Broker) Close() { b.cluster.Close() }
