package qmp

import "context"

// MigrationInfo is the part of query-migrate's reply yank reads.
type MigrationInfo struct {
	// Status: none, setup, active, completed, failed, cancelled, ...
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc,omitempty"`
	TotalTime int64  `json:"total-time,omitempty"` // ms
	RAM       *struct {
		Transferred int64 `json:"transferred"`
	} `json:"ram,omitempty"`
}

// Migrate starts an outgoing migration to uri (e.g. "exec:cat > file");
// it returns once the migration started (QueryMigrate follows it). QEMU
// refuses at once when a device blocks migration.
func (c *Client) Migrate(ctx context.Context, uri string) error {
	return c.Execute(ctx, "migrate", map[string]any{"uri": uri}, nil)
}

// QueryMigrate reports the migration's progress.
func (c *Client) QueryMigrate(ctx context.Context) (MigrationInfo, error) {
	var mi MigrationInfo
	err := c.Execute(ctx, "query-migrate", nil, &mi)
	return mi, err
}

// SetMigrationParameters sets migrate-set-parameters' arguments (e.g.
// "max-bandwidth").
func (c *Client) SetMigrationParameters(ctx context.Context, params map[string]any) error {
	return c.Execute(ctx, "migrate-set-parameters", params, nil)
}
