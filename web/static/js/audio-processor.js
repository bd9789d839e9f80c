// AudioWorklet side of the browser audio leg. Runs on the audio rendering thread, so it keeps
// working in a background tab (no timers involved).
//
// Capture: the AudioContext runs at 8 kHz, so the browser's own resampler converts the
// microphone; this processor cuts it into 20 ms frames (160 samples) of 16-bit PCM and posts
// each one to the page, which forwards it over the WebSocket.
// Playback: frames from the server are queued and played; the queue holds a small target delay
// and drops the oldest audio when it grows too long, so latency stays bounded.

const FRAME_SAMPLES = 160;

class DialerBridgeProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = (options && options.processorOptions) || {};
    this.targetDelaySamples = settings.targetDelaySamples || 480;   // 60 ms
    this.maximumDelaySamples = settings.maximumDelaySamples || 1600; // 200 ms
    this.capture = new Int16Array(FRAME_SAMPLES);
    this.captureLength = 0;
    this.muted = false;
    this.playback = [];          // queued Int16Array frames
    this.playbackOffset = 0;     // samples already played from playback[0]
    this.playbackQueued = 0;     // samples queued in total
    this.playing = false;        // false until the target delay is reached
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(message) {
    if (message.type === "play") {
      const frame = new Int16Array(message.pcm);
      this.playback.push(frame);
      this.playbackQueued += frame.length;
      while (this.playbackQueued - this.playbackOffset > this.maximumDelaySamples) {
        const dropped = this.playback.shift();
        this.playbackQueued -= dropped.length;
        this.playbackOffset = 0;
        this.port.postMessage({ type: "dropped", samples: dropped.length });
      }
    } else if (message.type === "mute") {
      this.muted = Boolean(message.muted);
    }
  }

  process(inputs, outputs) {
    const input = inputs[0] && inputs[0][0];
    if (input) {
      for (let index = 0; index < input.length; index += 1) {
        let sample = this.muted ? 0 : input[index];
        if (sample > 1) sample = 1;
        else if (sample < -1) sample = -1;
        this.capture[this.captureLength] = sample < 0 ? sample * 0x8000 : sample * 0x7fff;
        this.captureLength += 1;
        if (this.captureLength === FRAME_SAMPLES) {
          const frame = this.capture;
          this.port.postMessage({ type: "frame", pcm: frame.buffer }, [frame.buffer]);
          this.capture = new Int16Array(FRAME_SAMPLES);
          this.captureLength = 0;
        }
      }
    }
    const output = outputs[0] && outputs[0][0];
    if (output) this.fillOutput(output);
    return true;
  }

  fillOutput(output) {
    const available = this.playbackQueued - this.playbackOffset;
    if (!this.playing && available >= this.targetDelaySamples) this.playing = true;
    if (!this.playing) {
      output.fill(0);
      return;
    }
    let written = 0;
    while (written < output.length && this.playback.length > 0) {
      const frame = this.playback[0];
      const count = Math.min(output.length - written, frame.length - this.playbackOffset);
      for (let index = 0; index < count; index += 1) {
        output[written + index] = frame[this.playbackOffset + index] / 0x8000;
      }
      written += count;
      this.playbackOffset += count;
      if (this.playbackOffset === frame.length) {
        this.playback.shift();
        this.playbackQueued -= frame.length;
        this.playbackOffset = 0;
      }
    }
    if (written < output.length) {
      output.fill(0, written);
      this.playing = false;      // underrun: rebuild the target delay before playing again
    }
  }
}

registerProcessor("dialer-bridge", DialerBridgeProcessor);
