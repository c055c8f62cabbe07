package delta

import "fmt"

// PartitionValues renders the partition values of a row of schema s the way
// add actions record them (PROTOCOL.md §Partition Value Serialization), so a
// caller can match a row to the files of its partition.
func (s *Schema) PartitionValues(row Row, partitionColumns []string) (map[string]*string, error) {
	out := make(map[string]*string, len(partitionColumns))
	for _, c := range partitionColumns {
		i := s.Index(c)
		if i < 0 {
			return nil, fmt.Errorf("partition column %q is not in the schema", c)
		}
		v, err := partitionString(s.fields[i], s.types[i], row[i])
		if err != nil {
			return nil, err
		}
		out[s.fields[i].Name] = v
	}
	return out, nil
}
