# frozen_string_literal: true

require "json"
require "socket"
require "stringio"
require "zlib"

# A small HTTP/1.1 server on a raw TCPServer that speaks the ingestion API and
# injects faults: status codes with or without Retry-After, slow answers, answers that
# never come, reset connections. It records every request (decoded entries included)
# so specs can assert on exactly what the client sent. Keep-alive is supported.
#
#   server = FakeIngestionServer.start
#   server.respond_with { |request| [429, { "Retry-After" => "1" }, { error: "Rate limit exceeded" }] }
#   server.respond_with { |request| :reset }      # or :hang, or [status, headers, body]
#   server.wait_for_entries(10)
class FakeIngestionServer
  Request = Struct.new(:method, :path, :headers, :body, :entries, keyword_init: true) do
    def header(name)
      headers[name.downcase]
    end
  end

  def self.start(**options)
    new(**options).tap(&:start)
  end

  attr_reader :port

  def initialize(api_key: "test-key")
    @api_key = api_key
    @server = TCPServer.new("127.0.0.1", 0)
    @port = @server.addr[1]
    @requests = []
    @lock = Mutex.new
    @changed = ConditionVariable.new
    @responder = nil
    @threads = []
    @stopping = false
    @hang = Queue.new
  end

  def url
    "http://127.0.0.1:#{port}"
  end

  def start
    @acceptor = Thread.new { accept_loop }
    self
  end

  def stop
    @stopping = true
    @hang.close
    @server.close unless @server.closed?
    @acceptor&.join(2)
    @threads.each { |thread| thread.kill.join(1) }
  end

  # +block+ gets the Request and returns [status, headers, body], :reset or :hang.
  # Without a block: the default (200 with {"accepted": n}).
  def respond_with(&block)
    @lock.synchronize { @responder = block }
  end

  def requests
    @lock.synchronize { @requests.dup }
  end

  def entries
    requests.select { |r| r.path.end_with?("/logs/batch", "/logs") && r.entries }.flat_map(&:entries)
  end

  def messages
    entries.map { |entry| entry["message"] }
  end

  # Waits until +count+ entries arrived (successfully or not) or +timeout+ passes.
  def wait_for_entries(count, timeout: 10)
    wait_until(timeout) { entries.size >= count }
    entries
  end

  def wait_for_requests(count, timeout: 10)
    wait_until(timeout) { requests.size >= count }
    requests
  end

  def wait_until(timeout)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until yield
      remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      break if remaining <= 0

      @lock.synchronize { @changed.wait(@lock, [remaining, 0.05].min) }
    end
  end

  private

  def accept_loop
    until @stopping
      socket = @server.accept
      @lock.synchronize { @threads << Thread.new(socket) { |s| serve(s) } }
    end
  rescue IOError, Errno::EBADF, Errno::EINVAL
    nil
  end

  def serve(socket)
    loop do
      request = read_request(socket) or break
      record(request)
      answer = answer_for(request)
      case answer
      when :reset
        socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_LINGER, [1, 0].pack("ii"))
        break
      when :hang
        @hang.pop
        break
      else
        write_response(socket, *answer)
      end
    end
  rescue IOError, SystemCallError, ClosedQueueError
    nil
  ensure
    socket.close unless socket.closed?
  end

  def read_request(socket)
    line = socket.gets("\r\n") or return nil
    method, path, = line.split(" ", 3)
    headers = {}
    while (header = socket.gets("\r\n")) && header != "\r\n"
      name, value = header.split(":", 2)
      headers[name.strip.downcase] = value.to_s.strip
    end
    body = headers["content-length"] ? socket.read(headers["content-length"].to_i) : ""
    body = Zlib.gunzip(body) if headers["content-encoding"] == "gzip"
    Request.new(method: method, path: path, headers: headers, body: body, entries: decode_entries(path, body))
  end

  def decode_entries(path, body)
    document = JSON.parse(body)
    if path.end_with?("/batch")
      document["logs"]
    else
      [document["log"]]
    end
  rescue JSON::ParserError
    nil
  end

  def record(request)
    @lock.synchronize do
      @requests << request
      @changed.broadcast
    end
  end

  def answer_for(request)
    responder = @lock.synchronize { @responder }
    return responder.call(request) if responder
    return [401, {}, { error: "Invalid API key" }] if @api_key && request.header("x-api-key") != @api_key

    accepted(request)
  end

  public

  # The default answer: everything accepted.
  def accepted(request)
    count = request.entries ? request.entries.size : 0
    status = request.path.end_with?("/batch") ? 200 : 201
    [status, {}, request.path.end_with?("/batch") ? { accepted: count, rejected: 0, errors: [] } : { accepted: 1 }]
  end

  private

  def write_response(socket, status, headers, body)
    payload = body.is_a?(String) ? body : JSON.generate(body)
    head = +"HTTP/1.1 #{status} #{status_text(status)}\r\n"
    head << "Content-Type: application/json\r\nContent-Length: #{payload.bytesize}\r\n"
    headers.each { |name, value| head << "#{name}: #{value}\r\n" }
    socket.write(head, "\r\n", payload)
  end

  def status_text(status)
    { 200 => "OK", 201 => "Created", 401 => "Unauthorized", 403 => "Forbidden", 408 => "Request Timeout",
      429 => "Too Many Requests", 500 => "Internal Server Error", 503 => "Service Unavailable" }.fetch(status, "Status")
  end
end
