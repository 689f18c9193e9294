package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/store"
	"github.com/servicekit/servicekit/task"
)

// Registering from init (rather than from main) is what makes the functions
// part of the program whatever runs it: `go run … serve` as well as the
// tests, which build the service in-process from the same task.Default.
func init() { register() }

// register adds the guide's functions to task.Default. MustRegister panics
// on a duplicate name or a signature that can never be called, so a mistake
// here stops the program before it serves anything.
func register() {
	task.MustRegister("greet_user", greetUser, task.Description("Return a greeting for name."))
	task.MustRegister("hello", hello, task.Description("Simple hello world task."))
	task.MustRegister("add", add, task.Description("Add two numbers."))
	task.MustRegister("process_data", processData,
		task.Description("Save an artifact using the injected database and artifact manager."))
	task.MustRegister("store_result", storeResult, task.Description("Store data as a new artifact."))
	task.MustRegister("count_files", countFiles,
		task.Description("Count the entries of a directory inside the server's data directory (TASK_DATA_DIR)."))
	task.MustRegister("process_csv", processCSV,
		task.Description("Summarize a CSV file inside the server's data directory (TASK_DATA_DIR): row count, columns, and count/mean/min/max of numeric columns."))
	task.MustRegister("long_task", longTask,
		task.Description("Sleep through a number of steps, logging and reporting progress after each; stops when canceled."))
	task.MustRegister("safe_task", safeTask,
		task.Description("Run a risky operation and report its failure in the result instead of failing the job."))
	task.MustRegister("fail_task", failTask, task.Description("Always fail with the given message."))
}

// GreetParams are greet_user's arguments. The default tag is what makes
// name optional, like Python's name: str = "World".
type GreetParams struct {
	Name string `json:"name" default:"World" doc:"Who to greet"`
}

func greetUser(ctx context.Context, p GreetParams) (map[string]any, error) {
	return map[string]any{"message": "Hello, " + p.Name + "!"}, nil
}

// hello takes nothing at all: a function without a params argument accepts
// only empty params, so a typo in a key is reported rather than ignored.
func hello() map[string]any {
	return map[string]any{"message": "Hello!"}
}

// AddParams are add's arguments. Neither field has a default or omitempty,
// so both are required: $execute answers 422 when one is missing.
type AddParams struct {
	A int `json:"a" doc:"First addend"`
	B int `json:"b" doc:"Second addend"`
}

func add(p AddParams) map[string]any {
	return map[string]any{"result": p.A + p.B}
}

// processData takes no params, only injected services: arguments are
// matched by type, so *store.DB and *artifact.Manager are filled in by the
// service (Python's database and artifact_manager parameters).
func processData(ctx context.Context, db *store.DB, artifacts *artifact.Manager) (map[string]any, error) {
	if err := db.Ping(ctx); err != nil {
		return nil, fmt.Errorf("database unavailable: %w", err)
	}
	a, err := artifacts.Save(ctx, map[string]any{"processed": true, "database": string(db.Dialect)}, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{"status": "complete", "artifact_id": a.ID}, nil
}

// StoreResultParams are store_result's arguments.
type StoreResultParams struct {
	Data map[string]any `json:"data" doc:"Any JSON object; stored as the artifact's data"`
}

// storeResult mixes an injected service with params: the params struct is
// the one argument that is neither the context nor something the service
// provides.
func storeResult(ctx context.Context, artifacts *artifact.Manager, p StoreResultParams) (map[string]any, error) {
	a, err := artifacts.Save(ctx, p.Data, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{"artifact_id": a.ID}, nil
}

// DataDirEnv names the variable that sets the data directory, the only
// place count_files and process_csv read: "data" under the server's
// working directory when unset.
const DataDirEnv = "TASK_DATA_DIR"

// openData opens name inside the data directory, for a caller who may be
// anyone able to create a task. A path from a request must never reach
// os.Open as is: "/etc/shadow" or "../../.ssh/id_ed25519" would read
// whatever the server can. So a name must be local (filepath.IsLocal: not
// absolute, not empty, no ".." climbing out, which also catches what
// filepath.Clean would turn into such a path), and it is opened through an
// os.Root, which also refuses a symbolic link inside the directory that
// points out of it — something no check of the name alone can see.
func openData(field, name string) (*os.File, error) {
	dir := cmp.Or(os.Getenv(DataDirEnv), "data")
	if !filepath.IsLocal(name) {
		return nil, fmt.Errorf("%s %q: want a relative path inside the data directory %s (%s), without .. leading out of it",
			field, name, dir, DataDirEnv)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("data directory (%s): %w", DataDirEnv, err)
	}
	defer root.Close() // files opened through it stay open
	f, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s %q in the data directory %s: %w", field, name, dir, err)
	}
	return f, nil
}

// CountFilesParams are count_files's arguments.
type CountFilesParams struct {
	Directory string `json:"directory" default:"." doc:"Directory inside the server's data directory (TASK_DATA_DIR); . is the data directory itself"`
}

// countFiles counts every entry (files, directories, links…), like a plain
// ls. A directory that cannot be read fails the job rather than counting
// zero, since zero would look like an answer.
func countFiles(p CountFilesParams) (map[string]any, error) {
	d, err := openData("directory", p.Directory)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("directory %q: %w", p.Directory, err)
	}
	return map[string]any{"count": len(entries), "directory": p.Directory}, nil
}

// ProcessCSVParams are process_csv's arguments.
type ProcessCSVParams struct {
	Filepath string `json:"filepath" doc:"CSV file inside the server's data directory (TASK_DATA_DIR), as a relative path; the first record is the header"`
}

// CSVSummary is the result of process_csv, shaped like the Python guide's
// {"rows", "columns", "summary"} with summary = describe() per column.
type CSVSummary struct {
	Rows    int                      `json:"rows" doc:"data rows, not counting the header"`
	Columns []string                 `json:"columns" doc:"column names from the header, in order"`
	Summary map[string]ColumnSummary `json:"summary" doc:"statistics of each numeric column, by column name"`
}

// ColumnSummary is the part of pandas' describe() that needs no sorting:
// count, mean, min and max. Quantiles and std are left out to keep the
// example a single streaming pass.
type ColumnSummary struct {
	Count int     `json:"count" doc:"non-missing values"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
}

// missingValues are the cells treated as missing, a subset of pandas'
// default na_values. Treating "NaN" as missing rather than as a number also
// keeps NaN out of the result, which JSON cannot encode.
var missingValues = map[string]bool{
	"": true, "NA": true, "N/A": true, "n/a": true, "NaN": true, "nan": true,
	"null": true, "NULL": true, "None": true, "#N/A": true, "<NA>": true,
}

// columnStats accumulates one column in a single pass, so a file of any
// length is summarized in memory proportional to its width.
type columnStats struct {
	numeric  bool // no non-missing value so far failed to parse
	count    int
	mean     float64
	min, max float64
}

func (s *columnStats) add(cell string) {
	cell = strings.TrimSpace(cell)
	if !s.numeric || missingValues[cell] {
		return
	}
	v, err := strconv.ParseFloat(cell, 64)
	if err != nil || math.IsInf(v, 0) {
		// A text (or infinite) value makes the column non-numeric, as one
		// would make pandas read it as object dtype.
		s.numeric = false
		return
	}
	s.count++
	if s.count == 1 {
		s.min, s.max = v, v
	}
	s.min, s.max = min(s.min, v), max(s.max, v)
	// A running mean cannot overflow to Inf the way a sum of large values can.
	s.mean += (v - s.mean) / float64(s.count)
}

// processCSV is the Go stand-in for the guide's pandas version: encoding/csv
// reads the file, and a column counts as numeric when all its non-missing
// cells parse as finite numbers and there is at least one of them (an empty
// column has no mean that JSON could carry). Every record must have as many
// fields as the header; a ragged file fails the job with the line number.
func processCSV(ctx context.Context, p ProcessCSVParams) (*CSVSummary, error) {
	f, err := openData("filepath", p.Filepath)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	r := csv.NewReader(f)
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file, want a header line", p.Filepath)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Filepath, err)
	}
	columns := uniqueColumns(header)
	stats := make([]columnStats, len(columns))
	for i := range stats {
		stats[i].numeric = true
	}

	rows := 0
	for {
		record, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Filepath, err)
		}
		rows++
		// Big files take a while: let cancel and timeout stop the job.
		if rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		for i, cell := range record {
			stats[i].add(cell)
		}
	}

	out := &CSVSummary{Rows: rows, Columns: columns, Summary: map[string]ColumnSummary{}}
	for i, s := range stats {
		if s.numeric && s.count > 0 {
			out.Summary[columns[i]] = ColumnSummary{Count: s.count, Mean: s.mean, Min: s.min, Max: s.max}
		}
	}
	return out, nil
}

// uniqueColumns copies the header and renames repeated names the way pandas
// does ("a", "a.1", "a.2"), so that every column has its own summary key.
// It also drops a UTF-8 byte order mark, which spreadsheet exports often
// put before the first name.
func uniqueColumns(header []string) []string {
	cols := make([]string, len(header))
	seen := make(map[string]bool, len(header))
	for i, name := range header {
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff")
		}
		unique := name
		for n := 1; seen[unique]; n++ {
			unique = name + "." + strconv.Itoa(n)
		}
		seen[unique] = true
		cols[i] = unique
	}
	return cols
}

// LongTaskParams are long_task's arguments. The Python guide hard-codes 10
// steps of one second; here they are params with those defaults so that
// tests and demos can run it quickly.
type LongTaskParams struct {
	Steps   int `json:"steps" default:"10" minimum:"0" doc:"How many steps to run"`
	DelayMS int `json:"delay_ms" default:"1000" minimum:"0" doc:"Milliseconds each step takes"`
}

// longTask shows the two ways a long job tells the world how far it got:
// lines written to the injected io.Writer become the job's log (visible in
// $logs and as $stream log events, like Python's print), and
// task.Progress sets the record's progress. It waits on ctx as well as the
// timer, so canceling the job stops it mid-step instead of after it.
func longTask(ctx context.Context, p LongTaskParams, w io.Writer, progress task.Progress) (map[string]any, error) {
	delay := time.Duration(p.DelayMS) * time.Millisecond
	progress.Report(0, p.Steps, "starting")
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for i := 1; i <= p.Steps; i++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
		fmt.Fprintf(w, "Progress: %d/%d\n", i, p.Steps)
		progress.Report(i, p.Steps, fmt.Sprintf("step %d of %d done", i, p.Steps))
		timer.Reset(delay)
	}
	return map[string]any{"status": "complete"}, nil
}

// SafeTaskParams are safe_task's arguments.
type SafeTaskParams struct {
	RiskyParam string `json:"risky_param" doc:"Input of the risky operation; \"fail\" or \"\" make it fail"`
}

// safeTask is the guide's try/except pattern: the operation's error — or a
// panic, Go's nearest thing to an unexpected exception — is caught and
// returned as data, so the job completes and the caller reads the outcome
// from the result. Use this when failure is an expected answer; return the
// error instead (see fail_task) when the job itself should count as failed.
func safeTask(p SafeTaskParams) map[string]any {
	result, err := catch(func() (string, error) { return riskyOperation(p.RiskyParam) })
	if err != nil {
		return map[string]any{"status": "error", "error": err.Error()}
	}
	return map[string]any{"status": "success", "result": result}
}

// riskyOperation stands in for work that can fail on bad input.
func riskyOperation(param string) (string, error) {
	switch param {
	case "":
		return "", errors.New("risky operation: risky_param is empty")
	case "fail":
		return "", errors.New("risky operation failed")
	}
	return "processed " + param, nil
}

// catch runs fn and turns a panic into an error, like a catch-all except.
func catch[T any](fn func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn()
}

// FailParams are fail_task's arguments.
type FailParams struct {
	Message string `json:"message" minLength:"1" doc:"The error message the job fails with"`
}

// failTask returns an error: the job ends failed with the message as its
// error (and in its artifact), which is how a function says "this job did
// not do its work".
func failTask(p FailParams) error {
	return errors.New(p.Message)
}
