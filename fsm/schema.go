package fsm

import (
	memdb "github.com/hashicorp/go-memdb"
)

// Table names of the state store.
const (
	tableAccounts   = "accounts"
	tableAccessKeys = "access_keys"
	tableFunctions  = "functions"
	tableVersions   = "versions"
	tableAliases    = "aliases"
	tableNodes      = "nodes"
	tableRequests   = "requests"

	tableEventConfigs = "event_invoke_configs" // apply_async.go
	tableAsyncEvents  = "async_events"         // apply_async.go
	// tableProvisioned holds provisioned concurrency configs and
	// tableCeilings the lease coordinator's ceilings (issue 6).
	tableProvisioned = "provisioned_concurrency"
	tableCeilings    = "lease_ceilings"
)

// Index names shared by several tables.
const (
	indexID       = "id"
	indexAccount  = "account"
	indexFunction = "function"
)

// tablesInOrder fixes the order snapshots and hashes visit tables in.
var tablesInOrder = []string{
	tableAccounts, tableAccessKeys, tableFunctions, tableVersions,
	tableAliases, tableNodes, tableRequests,
	tableEventConfigs, tableAsyncEvents,
	tableBlobs,
	tableProvisioned, tableCeilings,
}

func str(field string) memdb.Indexer { return &memdb.StringFieldIndex{Field: field} }

func compound(fields ...memdb.Indexer) memdb.Indexer {
	return &memdb.CompoundIndex{Indexes: fields}
}

func schema() *memdb.DBSchema {
	functionKey := compound(str("AccountId"), str("FunctionName"))
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableAccounts: {Name: tableAccounts, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: str("Id")},
		}},
		tableAccessKeys: {Name: tableAccessKeys, Indexes: map[string]*memdb.IndexSchema{
			indexID:      {Name: indexID, Unique: true, Indexer: str("Id")},
			indexAccount: {Name: indexAccount, Indexer: str("AccountId")},
		}},
		tableFunctions: {Name: tableFunctions, Indexes: map[string]*memdb.IndexSchema{
			indexID:      {Name: indexID, Unique: true, Indexer: compound(str("AccountId"), str("Name"))},
			indexAccount: {Name: indexAccount, Indexer: str("AccountId")},
		}},
		tableVersions: {Name: tableVersions, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: compound(
				str("AccountId"), str("FunctionName"), &memdb.IntFieldIndex{Field: "Version"})},
			indexFunction: {Name: indexFunction, Indexer: functionKey},
		}},
		tableAliases: {Name: tableAliases, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: compound(
				str("AccountId"), str("FunctionName"), str("Name"))},
			indexFunction: {Name: indexFunction, Indexer: functionKey},
		}},
		tableNodes: {Name: tableNodes, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: str("Id")},
		}},
		tableRequests: {Name: tableRequests, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: str("RequestId")},
		}},
		tableEventConfigs: eventConfigsSchema(functionKey),
		tableAsyncEvents:  asyncEventsSchema(),
		tableBlobs:        blobTableSchema(),
		tableProvisioned:  provisionedTable(functionKey),
		tableCeilings:     ceilingsTable(),
	}}
}
