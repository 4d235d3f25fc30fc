# frozen_string_literal: true

module LogIngestion
  # The client IP the request entries carry, computed so that it can never raise into
  # the host app.
  #
  # Why: `ActionDispatch::Request#remote_ip` raises
  # `ActionDispatch::RemoteIp::IpSpoofAttackError` when a request carries `Client-IP`
  # and a different `X-Forwarded-For` -- headers any client can send. Reading it from
  # the gem's middleware, before the app runs, would turn every such request into a
  # 500 on every logged route, in apps that never read `remote_ip` themselves.
  #
  # Owns: that computation and the spoofing note. Never raises, never changes the
  # request (Rails' memoised `remote_ip` stays unset, so the app sees what it would
  # have seen without the gem), never copies more than NOTE_LIMIT bytes of the
  # client's headers into an entry.
  module RequestIp
    # Longest spoofing note, in bytes (the headers it quotes are the client's).
    NOTE_LIMIT = 256
    SPOOF_ERROR = "ActionDispatch::RemoteIp::IpSpoofAttackError"

    # { ip: } -- `remote_ip` where the request has one, else `ip` -- plus
    # { ip_spoofing: note } when `remote_ip` refused a spoofing attempt (then ip is
    # `request.ip`, the address Rack computes from REMOTE_ADDR and trusted proxies).
    def self.call(request)
      return { ip: fallback_ip(request) } unless request.respond_to?(:remote_ip)

      { ip: request.remote_ip }
    rescue StandardError => e
      metadata = { ip: fallback_ip(request) }
      metadata[:ip_spoofing] = note(e) if e.class.name == SPOOF_ERROR
      metadata
    end

    # [ip, note]: the same as +call+ without building a Hash (note nil unless spoofed).
    # A request without proxy headers is answered from REMOTE_ADDR, which is what
    # `remote_ip` would compute, without its parsing (tens of µs when Rails' own request
    # line did not compute it first).
    def self.address(request)
      env = request.env
      if !env.key?("HTTP_X_FORWARDED_FOR") && !env.key?("HTTP_CLIENT_IP") && (addr = env["REMOTE_ADDR"])
        return [addr, nil]
      end
      return [fallback_ip(request), nil] unless request.respond_to?(:remote_ip)

      [request.remote_ip, nil]
    rescue StandardError => e
      [fallback_ip(request), e.class.name == SPOOF_ERROR ? note(e) : nil]
    end

    # `request.ip`, or nil when even that fails.
    def self.fallback_ip(request)
      request.ip
    rescue StandardError
      nil
    end

    # Rails' message (it names both headers), cut to NOTE_LIMIT bytes.
    def self.note(error)
      text = error.message.to_s
      text = "#{text.byteslice(0, NOTE_LIMIT - 3).scrub('')}..." if text.bytesize > NOTE_LIMIT
      text
    end
    private_class_method :fallback_ip, :note
  end
end
