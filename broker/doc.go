// Package broker holds the Kafka plumbing shared by every line service: an
// embedded, disk-persistent Kafka broker for development (built on franz-go's
// kfake), idempotent topic management, broker list parsing, and a readiness
// probe.
//
// The embedded broker is a development tool only. It runs a single in-process
// kfake broker whose log lives under a data directory guarded by an exclusive
// file lock, so two processes can never corrupt one directory:
//
//	emb, err := broker.StartEmbedded(broker.EmbeddedConfig{
//		DataDir: "./.line",
//		Addr:    "127.0.0.1:9092",
//	})
//	if err != nil {
//		return err
//	}
//	defer emb.Close()
//
//	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...))
//
// Services talking to a real cluster use [Brokers] to parse the configured
// broker list, [WaitReady] to wait for the cluster to answer, and
// [EnsureTopics] to create the topics they need.
package broker
