"""Flow-control marks shared by connections and queues (one place to tune them)."""

#: stop dispatching to a connection with this many bytes queued for one flush
OUT_HIGH = 1 << 20
#: a read this large means a busy publisher: yield to the loop before reading more
READ_BUDGET = 1 << 16
#: deliveries per dispatch callback before yielding to the loop
DISPATCH_BUDGET = 512
#: publishers to a queue with consumers pause reading above this many ready messages
FLOW_HIGH = 20000
#: ... and resume below this many
FLOW_LOW = 10000
