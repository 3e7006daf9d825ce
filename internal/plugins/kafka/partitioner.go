package kafka

import (
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kgo"
)

// placement is what a record carries for the partitioner: the partition
// field's value, or the partition key (partition_key_key), which ruby-kafka
// hashes instead of the message key when it is set.
type placement struct {
	partition int32 // -1: none
	key       []byte
}

// partitioner places records as ruby-kafka does: an explicit partition,
// else a hash of the partition key or, without one, of the message key;
// records with neither go where franz-go's sticky partitioner batches them.
// ruby-kafka's hash is crc32 modulo the partition count (the default) or
// Kafka's own murmur2.
type partitioner struct {
	hash kgo.PartitionerHasher
	base kgo.Partitioner
	// place returns a record's placement; records are the output's own.
	place func(*kgo.Record) *placement
}

func newPartitioner(function string, place func(*kgo.Record) *placement) *partitioner {
	p := &partitioner{place: place}
	if function == "murmur2" {
		// franz-go's default key hasher is Kafka's murmur2, as the Java
		// client's; a keyed record through it is the same placement.
		p.base = kgo.StickyKeyPartitioner(nil)
		// For a keyed record it only hashes: one serves every topic.
		keyed := p.base.ForTopic("")
		p.hash = func(key []byte, n int) int { return keyed.Partition(&kgo.Record{Key: key}, n) }
	} else {
		p.hash = func(key []byte, n int) int { return int(crc32.ChecksumIEEE(key) % uint32(n)) }
		p.base = kgo.StickyKeyPartitioner(p.hash)
	}
	return p
}

func (p *partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return &topicPartitioner{p: p, base: p.base.ForTopic(topic)}
}

type topicPartitioner struct {
	p    *partitioner
	base kgo.TopicPartitioner
}

func (t *topicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	pl := t.p.place(r)
	return pl.partition >= 0 || pl.key != nil || r.Key != nil
}

func (t *topicPartitioner) Partition(r *kgo.Record, n int) int {
	pl := t.p.place(r)
	switch {
	case pl.partition >= 0:
		// ruby-kafka fails a partition beyond the topic's; Sluice wraps it
		// so that the record is not lost for a partition count that shrank
		// in a test cluster (Kafka cannot shrink one).
		return int(pl.partition) % n
	case pl.key != nil:
		return t.p.hash(pl.key, n)
	}
	return t.base.Partition(r, n)
}

// OnNewBatch lets the sticky partitioner move keyless records on.
func (t *topicPartitioner) OnNewBatch() {
	if nb, ok := t.base.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}
